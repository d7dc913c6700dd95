//! rookery-net
