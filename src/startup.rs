//! Builds the running service from settings. `main` and the integration tests both use it.

use std::future::Future;
use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::api::{self, AppState, Clock};
use crate::config::Settings;
use crate::domain::eta::{EstimateEta, RulesEta};
use crate::telemetry::Metrics;

pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// Binds the listener (port 0 picks a free one) and prepares the server without running it.
    pub fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Clock::System)
    }

    pub fn build_with_clock(settings: &Settings, clock: Clock) -> anyhow::Result<Self> {
        let estimator: Arc<dyn EstimateEta> = Arc::new(RulesEta::new(settings.rules_eta_config()));
        let state = web::Data::new(AppState {
            estimator,
            metrics: Metrics::new(),
            settings: settings.api.clone(),
            clock,
        });
        let listener = TcpListener::bind(settings.server.bind)
            .with_context(|| format!("cannot listen on {}", settings.server.bind))?;
        let port = listener
            .local_addr()
            .context("listener has no address")?
            .port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(api::track_requests))
                .app_data(state.clone())
                .configure(api::routes)
                .default_service(web::to(api::not_found))
        })
        .disable_signals()
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        let server = server
            .listen(listener)
            .context("cannot start the HTTP server")?
            .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let handle = self.server.handle();
        tokio::spawn(async move {
            shutdown.await;
            tracing::info!(message = "Shutting down; finishing in-flight requests.");
            handle.stop(true).await;
        });
        self.server.await
    }
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
