//! One integration-test binary: every module shares one link step and one `spawn_app`.

mod access;
mod architecture;
mod cli;
mod contract;
mod dashboard;
mod drift;
mod errors;
mod eta;
mod feeds;
mod fuzz_replay;
mod hardening;
mod helpers;
mod history;
mod model;
mod operations;
mod outage;
mod outbox;
mod phones;
mod postgres_tls;
mod replicas;
mod restart;
mod rules;
mod sharing;
mod tracking;
mod training;
mod webhooks;
