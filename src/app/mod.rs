//! The composition root: the command line and the start-up that wires every layer.

pub mod cli;
pub mod startup;
