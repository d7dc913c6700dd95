//! Throughput measurement (ignored by default; run with
//! `cargo test --release -p rookery-xml --test throughput -- --ignored --nocapture`).
//!
//! Flow measured: bytes → Framer → StreamEvent::Stanza for a realistic chat
//! message, next to rxml's raw parser alone (the floor this layer sits on),
//! and Element::write_to for the reply direction.

use std::time::Instant;

use rookery_xml::{Element, Framer, Limits, StreamEvent, stream_open};
use rxml::{Parse, RawParser};

const STANZA: &str = "<message to='juliet@capulet.example/balcony' \
    from='romeo@montague.example/garden' type='chat' id='abc123' xml:lang='en'>\
    <body>Wherefore art thou, Romeo? &amp; ünïcödé text to make it realistic</body>\
    <active xmlns='http://jabber.org/protocol/chatstates'/>\
    <request xmlns='urn:xmpp:receipts'/>\
    <origin-id xmlns='urn:xmpp:sid:0' id='de305d54-75b4-431b-adb2-eb6b9e546014'/></message>\n";

#[test]
#[ignore]
fn throughput() {
    let n = 100_000;
    let mut input = Vec::new();
    stream_open(&mut input, "jabber:client", &[("to", "example")], &[]);
    for _ in 0..n {
        input.extend_from_slice(STANZA.as_bytes());
    }
    let mb = input.len() as f64 / 1e6;

    for chunk in [input.len(), 4096] {
        let t = Instant::now();
        let mut f = Framer::new(Limits::default());
        let mut count = 0;
        for c in input.chunks(chunk) {
            f.feed(c);
            while let Some(ev) = f.next_event().expect("valid stream") {
                if let StreamEvent::Stanza(e) = ev {
                    count += 1;
                    std::hint::black_box(e);
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(count, n);
        println!(
            "framer, {chunk}-byte feeds: {:.0} stanzas/s, {:.1} MB/s",
            n as f64 / secs,
            mb / secs
        );
    }

    let t = Instant::now();
    let mut p = RawParser::new();
    let mut rest = &input[..];
    while let Ok(Some(ev)) = p.parse(&mut rest, false) {
        std::hint::black_box(ev);
    }
    println!(
        "rxml RawParser alone: {:.1} MB/s",
        mb / t.elapsed().as_secs_f64()
    );

    let e = Element::parse(STANZA.trim()).expect("valid stanza");
    let mut out = Vec::new();
    let t = Instant::now();
    for _ in 0..n {
        out.clear();
        e.write_to(&mut out, "jabber:client");
        std::hint::black_box(&out);
    }
    println!("write_to: {:?} per stanza", t.elapsed() / n);
}
