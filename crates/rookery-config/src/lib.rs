//! rookery-config
