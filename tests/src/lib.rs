//! Helpers for spawning gapsync binaries in temp workspaces.
