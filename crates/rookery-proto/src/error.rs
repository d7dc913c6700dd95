//! The two error classes a peer sees: stanza errors (RFC 6120 §8.3, the session lives on) and
//! stream errors (RFC 6120 §4.9, the stream is closed after sending one). Built by routing,
//! negotiation and modules; serialized by the session actor.

use crate::ns;
use rookery_xml::Element;

/// RFC 6120 §8.3.2 error types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorType {
    Auth,
    Cancel,
    Continue,
    Modify,
    Wait,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::Auth => "auth",
            ErrorType::Cancel => "cancel",
            ErrorType::Continue => "continue",
            ErrorType::Modify => "modify",
            ErrorType::Wait => "wait",
        }
    }
}

macro_rules! conditions {
    ($( $variant:ident => $name:literal, $ty:ident; )*) => {
        /// RFC 6120 §8.3.3 defined stanza error conditions.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[non_exhaustive]
        pub enum Condition { $( $variant, )* }
        impl Condition {
            pub fn as_str(self) -> &'static str {
                match self { $( Condition::$variant => $name, )* }
            }
            /// The error type RFC 6120 §8.3.3 gives in its examples for this condition.
            pub fn default_type(self) -> ErrorType {
                match self { $( Condition::$variant => ErrorType::$ty, )* }
            }
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $( $name => Some(Condition::$variant), )* _ => None }
            }
        }
    };
}

conditions! {
    BadRequest => "bad-request", Modify;
    Conflict => "conflict", Cancel;
    FeatureNotImplemented => "feature-not-implemented", Cancel;
    Forbidden => "forbidden", Auth;
    Gone => "gone", Cancel;
    InternalServerError => "internal-server-error", Cancel;
    ItemNotFound => "item-not-found", Cancel;
    JidMalformed => "jid-malformed", Modify;
    NotAcceptable => "not-acceptable", Modify;
    NotAllowed => "not-allowed", Cancel;
    NotAuthorized => "not-authorized", Auth;
    PolicyViolation => "policy-violation", Modify;
    RecipientUnavailable => "recipient-unavailable", Wait;
    Redirect => "redirect", Modify;
    RegistrationRequired => "registration-required", Auth;
    RemoteServerNotFound => "remote-server-not-found", Cancel;
    RemoteServerTimeout => "remote-server-timeout", Wait;
    ResourceConstraint => "resource-constraint", Wait;
    ServiceUnavailable => "service-unavailable", Cancel;
    SubscriptionRequired => "subscription-required", Auth;
    UndefinedCondition => "undefined-condition", Cancel;
    UnexpectedRequest => "unexpected-request", Wait;
}

/// A stanza error to put into an error reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaError {
    pub kind: ErrorType,
    pub condition: Condition,
    pub text: Option<String>,
    /// Application-specific condition element (e.g. XEP-0191 `<blocked/>`).
    pub extra: Option<Element>,
    /// The `by` attribute: the entity that generated the error (RFC 6120 §8.3.1).
    pub by: Option<String>,
}

impl StanzaError {
    pub fn new(condition: Condition) -> Self {
        StanzaError {
            kind: condition.default_type(),
            condition,
            text: None,
            extra: None,
            by: None,
        }
    }
    pub fn with_type(mut self, kind: ErrorType) -> Self {
        self.kind = kind;
        self
    }
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    pub fn with_extra(mut self, el: Element) -> Self {
        self.extra = Some(el);
        self
    }
    pub fn with_by(mut self, by: impl Into<String>) -> Self {
        self.by = Some(by.into());
        self
    }

    pub fn bad_request(text: &str) -> Self {
        Self::new(Condition::BadRequest).with_text(text)
    }
    pub fn service_unavailable() -> Self {
        Self::new(Condition::ServiceUnavailable)
    }
    pub fn forbidden() -> Self {
        Self::new(Condition::Forbidden)
    }
    pub fn item_not_found() -> Self {
        Self::new(Condition::ItemNotFound)
    }
    pub fn internal() -> Self {
        Self::new(Condition::InternalServerError)
    }
    pub fn not_allowed() -> Self {
        Self::new(Condition::NotAllowed)
    }

    /// The `<error/>` child, in the stanza's own namespace `content_ns`.
    pub fn to_element(&self, content_ns: &str) -> Element {
        let mut el = Element::new("error", content_ns).with_attr("type", self.kind.as_str());
        if let Some(by) = &self.by {
            el.set_attr("by", by);
        }
        el.append_child(Element::new(self.condition.as_str(), ns::STANZAS));
        if let Some(text) = &self.text {
            el.append_child(Element::new("text", ns::STANZAS).with_text(text.as_str()));
        }
        if let Some(extra) = &self.extra {
            el.append_child(extra.clone());
        }
        el
    }

    /// Reads an `<error/>` child back (used when relaying or inspecting bounces).
    pub fn from_element(el: &Element) -> Option<Self> {
        let kind = match el.attr("type")? {
            "auth" => ErrorType::Auth,
            "cancel" => ErrorType::Cancel,
            "continue" => ErrorType::Continue,
            "modify" => ErrorType::Modify,
            "wait" => ErrorType::Wait,
            _ => return None,
        };
        let condition = el
            .children()
            .filter(|c| c.ns() == ns::STANZAS && c.name() != "text")
            .find_map(|c| Condition::from_name(c.name()))?;
        let text = el.get_child("text", ns::STANZAS).map(|t| t.text());
        Some(StanzaError {
            kind,
            condition,
            text,
            extra: None,
            by: el.attr("by").map(str::to_owned),
        })
    }
}

impl std::fmt::Display for StanzaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.condition.as_str())?;
        if let Some(t) = &self.text {
            write!(f, ": {t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StanzaError {}

/// RFC 6120 §4.9.3 stream error conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamCondition {
    BadFormat,
    BadNamespacePrefix,
    Conflict,
    ConnectionTimeout,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    RemoteConnectionFailed,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SeeOtherHost,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl StreamCondition {
    pub fn as_str(self) -> &'static str {
        use StreamCondition::*;
        match self {
            BadFormat => "bad-format",
            BadNamespacePrefix => "bad-namespace-prefix",
            Conflict => "conflict",
            ConnectionTimeout => "connection-timeout",
            HostGone => "host-gone",
            HostUnknown => "host-unknown",
            ImproperAddressing => "improper-addressing",
            InternalServerError => "internal-server-error",
            InvalidFrom => "invalid-from",
            InvalidNamespace => "invalid-namespace",
            InvalidXml => "invalid-xml",
            NotAuthorized => "not-authorized",
            NotWellFormed => "not-well-formed",
            PolicyViolation => "policy-violation",
            RemoteConnectionFailed => "remote-connection-failed",
            Reset => "reset",
            ResourceConstraint => "resource-constraint",
            RestrictedXml => "restricted-xml",
            SeeOtherHost => "see-other-host",
            SystemShutdown => "system-shutdown",
            UndefinedCondition => "undefined-condition",
            UnsupportedEncoding => "unsupported-encoding",
            UnsupportedFeature => "unsupported-feature",
            UnsupportedStanzaType => "unsupported-stanza-type",
            UnsupportedVersion => "unsupported-version",
        }
    }

    /// Maps the framer's condition names (rookery-xml reports them as strings so that it does
    /// not depend on this crate).
    pub fn from_name(name: &str) -> Self {
        use StreamCondition::*;
        match name {
            "bad-format" => BadFormat,
            "invalid-namespace" => InvalidNamespace,
            "not-well-formed" => NotWellFormed,
            "policy-violation" => PolicyViolation,
            "restricted-xml" => RestrictedXml,
            "unsupported-encoding" => UnsupportedEncoding,
            _ => UndefinedCondition,
        }
    }
}

/// A stream error: sent, then the stream is closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    pub condition: StreamCondition,
    pub text: Option<String>,
    /// An application-specific condition (RFC 6120 §4.9.4), e.g. XEP-0198's
    /// `<handled-count-too-high/>`.
    pub extra: Option<Box<Element>>,
}

impl StreamError {
    pub fn new(condition: StreamCondition) -> Self {
        StreamError {
            condition,
            text: None,
            extra: None,
        }
    }
    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }
    pub fn with_extra(mut self, el: Element) -> Self {
        self.extra = Some(Box::new(el));
        self
    }
    /// `<stream:error>`; the writer gives it the `stream:` prefix because its namespace is the
    /// stream namespace declared on the stream header.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("error", ns::STREAM);
        el.append_child(Element::new(self.condition.as_str(), ns::STREAMS));
        if let Some(text) = &self.text {
            el.append_child(Element::new("text", ns::STREAMS).with_text(text.as_str()));
        }
        if let Some(extra) = &self.extra {
            el.append_child(Element::clone(extra));
        }
        el
    }
}

impl std::fmt::Display for StreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stream error {}", self.condition.as_str())?;
        if let Some(t) = &self.text {
            write!(f, ": {t}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StreamError {}
