//! rookery-tls
