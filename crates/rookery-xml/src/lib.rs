//! rookery-xml: the sans-IO XML layer of Rookery.
//!
//! Flow: bytes from a socket → [`Framer`] → [`StreamEvent`] (stream header,
//! one [`Element`] per top-level element, stream end) → protocol machines in
//! rookery-proto; in the other direction they build [`Element`]s and
//! serialize them with [`Element::write_to`] and [`stream_open`].
//!
//! Everything here treats input as hostile: RFC 6120 §11 restricted XML via
//! rxml, and the [`Limits`] are enforced while bytes are parsed, never after
//! a tree has been built.

mod element;
mod error;
mod framer;
mod limits;
mod ns;
mod sniff;
mod tree;
mod writer;

pub use element::{Element, Node};
pub use error::FramerError;
pub use framer::{Framer, StreamEvent, StreamHeader};
pub use limits::Limits;
pub use writer::{STREAM_CLOSE, open_tag, stream_open};

/// Namespace of the stream root element (`stream:stream`).
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";
/// The namespace bound to the `xml` prefix (`xml:lang`).
pub const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// The namespace of `xmlns` declarations; it can never be declared.
pub(crate) const NS_XMLNS: &str = "http://www.w3.org/2000/xmlns/";
