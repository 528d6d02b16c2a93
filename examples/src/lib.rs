//! Shared types for the example programs.
