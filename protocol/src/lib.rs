//! gapsync link protocol.
