//! `zones suggest`: allow rules for observed paths the policy does not allow.
