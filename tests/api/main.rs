//! One integration-test binary: every module shares one link step and one `spawn_app`.

mod access;
mod architecture;
mod cli;
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
mod outbox;
mod replicas;
mod sharing;
mod tracking;
mod training;
mod webhooks;
