//! The hyper-parameter sweep harness (grid over config keys); filled in with the trainer CLI.
