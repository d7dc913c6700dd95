// xmpp.js against Rookery, driven by tests/interop/test_xmppjs.py: two users log in the way
// xmpp.js does by default (STARTTLS, then the strongest SASL mechanism it supports), A sends B
// a chat message, B answers, both go offline. Prints one line per step; exits non-zero on any
// error or after 20 s.
//
//   NODE_TLS_REJECT_UNAUTHORIZED=0 node exchange.mjs HOST PORT DOMAIN PASSWORD USER_A USER_B
// (the test server's certificate is self-signed, hence the variable: test use only)
import { client, xml } from "@xmpp/client";

const [host, port, domain, password, userA, userB] = process.argv.slice(2);
const timer = setTimeout(() => {
  console.log("error: timed out");
  process.exit(3);
}, 20000);

function connect(username) {
  const xmpp = client({
    service: `xmpp://${host}:${port}`,
    domain,
    username,
    password,
  });
  xmpp.on("error", (err) => {
    console.log(`error: ${username}: ${err.condition || err.message}`);
    process.exit(2);
  });
  return xmpp;
}

// Resolves with the first chat message `xmpp` receives.
function nextMessage(xmpp) {
  return new Promise((resolve) => {
    xmpp.on("stanza", (st) => {
      if (st.is("message") && st.getChildText("body") !== null) {
        resolve(st);
      }
    });
  });
}

const a = connect(userA);
const b = connect(userB);
const jidA = await a.start();
console.log(`online: ${jidA}`);
const jidB = await b.start();
console.log(`online: ${jidB}`);
await a.send(xml("presence"));
await b.send(xml("presence"));

const toB = nextMessage(b);
const toA = nextMessage(a);
const token = `hello-${Date.now()}`;
await a.send(xml("message", { to: jidB.toString(), type: "chat" }, xml("body", {}, token)));
const got = await toB;
console.log(`received by ${userB}: ${got.getChildText("body")} from ${got.attrs.from}`);
await b.send(
  xml("message", { to: got.attrs.from, type: "chat" }, xml("body", {}, `re: ${token}`)),
);
const reply = await toA;
console.log(`received by ${userA}: ${reply.getChildText("body")} from ${reply.attrs.from}`);

await a.stop();
await b.stop();
clearTimeout(timer);
console.log("done");
