//! How far a tracker has come back since it started: the pings of the window, the
//! corrections, then the estimates of the active shipments. The service listens before any of
//! it is done (`/readyz` says what is missing); what needs a part waits for it here.

use std::sync::{Condvar, Mutex};

use tokio::sync::watch;

use super::tracker::{lock, TrackError};

/// A part of the restoration, in the order they are done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The window's pings are read back from the segments: a ping taken now would race them.
    Pings,
    /// The corrections are learnt again from the latest deliveries: an estimate computed now
    /// would be uncorrected, and announced as moved once they are back.
    Corrections,
    /// The active shipments are followed again and their estimates recomputed, one by one.
    Estimates,
    Ready,
}

impl Stage {
    const PARTS: [Stage; 3] = [Self::Pings, Self::Corrections, Self::Estimates];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pings => "pings",
            Self::Corrections => "corrections",
            Self::Estimates => "estimates",
            Self::Ready => "ready",
        }
    }
}

/// Where the restoration stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Working on this stage; every earlier one is done.
    At(Stage),
    /// Stopped on an error: nothing after it will be back.
    Failed(String),
}

impl Progress {
    /// The parts not back yet, in order; all of them after a failure.
    pub fn waiting_for(&self) -> Vec<&'static str> {
        let reached = match self {
            Self::At(stage) => *stage,
            Self::Failed(_) => Stage::Pings,
        };
        Stage::PARTS
            .into_iter()
            .filter(|part| *part >= reached)
            .map(Stage::as_str)
            .collect()
    }

    pub fn is_ready(&self) -> bool {
        *self == Self::At(Stage::Ready)
    }

    /// Whether everything before `stage` is back; the error once it never will be.
    fn reached(&self, stage: Stage) -> Result<bool, TrackError> {
        match self {
            Self::At(at) => Ok(*at >= stage),
            Self::Failed(error) => Err(TrackError::Storage(format!(
                "live tracking was not restored: {error}"
            ))),
        }
    }
}

/// The progress, for the request threads that block on it (the tracker is synchronous) and
/// for async callers (tests, the readiness wait) alike.
pub struct Restoration {
    progress: watch::Sender<Progress>,
    /// Taken while the progress moves, so that a blocked thread cannot miss the wake-up.
    moving: Mutex<()>,
    moved: Condvar,
}

impl Default for Restoration {
    fn default() -> Self {
        Self {
            progress: watch::Sender::new(Progress::At(Stage::Pings)),
            moving: Mutex::new(()),
            moved: Condvar::new(),
        }
    }
}

impl Restoration {
    pub fn progress(&self) -> Progress {
        self.progress.borrow().clone()
    }

    pub(super) fn advance(&self, stage: Stage) {
        self.set(Progress::At(stage));
    }

    pub(super) fn fail(&self, error: String) {
        self.set(Progress::Failed(error));
    }

    fn set(&self, progress: Progress) {
        let _moving = lock(&self.moving);
        self.progress.send_replace(progress);
        self.moved.notify_all();
    }

    /// Blocks the calling thread until everything before `stage` is back.
    pub(super) fn wait_blocking(&self, stage: Stage) -> Result<(), TrackError> {
        // Every ping batch and recomputation asks: once restored, no lock is taken.
        if self.progress.borrow().reached(stage)? {
            return Ok(());
        }
        let mut moving = lock(&self.moving);
        while !self.progress.borrow().reached(stage)? {
            moving = self
                .moved
                .wait(moving)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        Ok(())
    }

    /// Completes once everything before `stage` is back.
    pub async fn wait(&self, stage: Stage) -> Result<(), TrackError> {
        let mut progress = self.progress.subscribe();
        let mut outcome = Ok(());
        // The sender lives as long as `self`: the wait ends only on a stage or a failure.
        let _ = progress
            .wait_for(|now| match now.reached(stage) {
                Ok(reached) => reached,
                Err(error) => {
                    outcome = Err(error);
                    true
                }
            })
            .await;
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_missing_shrinks_stage_by_stage() {
        let missing = |progress: Progress| progress.waiting_for();
        assert_eq!(
            missing(Progress::At(Stage::Pings)),
            ["pings", "corrections", "estimates"]
        );
        assert_eq!(missing(Progress::At(Stage::Estimates)), ["estimates"]);
        assert!(missing(Progress::At(Stage::Ready)).is_empty());
        assert_eq!(missing(Progress::Failed("disk".into())).len(), 3);
    }

    #[test]
    fn a_blocked_thread_wakes_at_its_stage_or_at_a_failure() {
        let restoration = std::sync::Arc::new(Restoration::default());
        let waiting = restoration.clone();
        let waiter = std::thread::spawn(move || waiting.wait_blocking(Stage::Estimates));
        restoration.advance(Stage::Corrections);
        restoration.advance(Stage::Estimates);
        assert!(waiter.join().unwrap().is_ok());
        restoration.fail("disk".into());
        assert!(restoration.wait_blocking(Stage::Ready).is_err());
    }
}
