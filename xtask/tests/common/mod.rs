//! Shared by the xtask tests: locating `../shared` beside the repository.

pub use ant_fixtures::shared;
