//! The component connection's mailbox as core sees it: `Server::route` hands stanzas for the
//! component's domain to `Link::send`, which queues them for the connection actor without
//! waiting. A full queue (the component is not keeping up) hands the stanza back, and the
//! router bounces it with `service-unavailable`.

use rookery_core::components::{ComponentLink, next_link_id};
use rookery_proto::stanza::Stanza;
use tokio::sync::mpsc;

pub(super) struct Link {
    id: u64,
    tx: mpsc::Sender<Stanza>,
}

impl Link {
    /// A link with room for `capacity` queued stanzas, and the actor's end of the queue.
    pub(super) fn new(capacity: usize) -> (Link, mpsc::Receiver<Stanza>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Link {
                id: next_link_id(),
                tx,
            },
            rx,
        )
    }
}

impl ComponentLink for Link {
    fn link_id(&self) -> u64 {
        self.id
    }

    fn send(&self, st: Stanza) -> Result<(), Stanza> {
        self.tx.try_send(st).map_err(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str) -> Stanza {
        let el = rookery_xml::Element::new("message", rookery_proto::ns::CLIENT)
            .with_attr("to", "echo.example")
            .with_attr("id", id);
        Stanza::new(el).unwrap_or_else(|e| panic!("{e:?}"))
    }

    #[test]
    fn a_full_queue_hands_the_stanza_back() {
        let (link, mut rx) = Link::new(1);
        assert!(link.send(message("a")).is_ok());
        let back = link
            .send(message("b"))
            .err()
            .map(|s| s.id().map(str::to_owned));
        assert_eq!(back, Some(Some("b".to_owned())));
        assert_eq!(
            rx.try_recv().ok().and_then(|s| s.id().map(str::to_owned)),
            Some("a".into())
        );
        drop(rx);
        assert!(
            link.send(message("c")).is_err(),
            "a closed connection refuses too"
        );
    }
}
