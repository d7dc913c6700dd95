//! rookery-store
