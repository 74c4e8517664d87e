//! Locating `../shared` from the tests.
#![allow(dead_code)] // Each test binary uses a different subset.

pub use ant_fixtures::shared;
