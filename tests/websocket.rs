//! WebSocket through lynxio, black-box, with tungstenite on both ends: an absolute-form
//! handshake over a plain proxy connection and one inside a CONNECT tunnel after keep-alive
//! requests are forwarded with their Upgrade/Connection fields, the origin's `101` (with its
//! `Sec-WebSocket-Accept`) reaches the client, and then text, binary, 1 MiB and fragmented
//! messages, ping/pong and the close handshake pass both ways; an origin that refuses the
//! upgrade leaves the connection plain HTTP; the session is one access-log line.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use common::*;
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::{Role, WebSocket};
use tungstenite::{Bytes, Message};

/// The `Sec-WebSocket-Key` every test client sends (its accept value is derived and checked).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// Messages read per connection by the echo origin, at most.
const MAX_MESSAGES: usize = 1000;

/// An origin that answers plain requests `200 plain`, refuses `/reject` upgrades with 404, and
/// accepts other WebSocket handshakes (`/greet`: with a message in the same write as the
/// 101), then echoes every data message until the close
/// handshake. Handles several requests per connection before the upgrade.
fn ws_echo_origin() -> Origin {
    Origin::start(|s| {
        let mut r = Reader::new(s);
        for _ in 0..16 {
            let Some(req) = r.request_head() else { return };
            let upgrade = req
                .header("upgrade")
                .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
            if !upgrade {
                let _ = r.get_mut().write_all(&ok(b"plain"));
                continue;
            }
            if req.target.ends_with("/reject") {
                let _ = r
                    .get_mut()
                    .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno");
                continue;
            }
            let key = req.header("sec-websocket-key").unwrap_or_default();
            let accept = derive_accept_key(key.as_bytes());
            let mut answer = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            )
            .into_bytes();
            if req.target.ends_with("/greet") {
                // A server-first message in the same write as the 101.
                answer.extend_from_slice(b"\x81\x02hi");
            }
            if r.get_mut().write_all(&answer).is_err() {
                return;
            }
            let (stream, rest) = r.into_parts();
            let mut ws = WebSocket::from_partially_read(stream, rest, Role::Server, None);
            for _ in 0..MAX_MESSAGES {
                match ws.read() {
                    Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                        if ws.send(m).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
            return;
        }
    })
}

/// The opening handshake for `target` (absolute-form or origin-form) with `Host: host`.
fn handshake(target: &str, host: &str) -> String {
    format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

/// Sends the handshake on `r`, checks the `101` (Upgrade, Connection, accept key) and returns
/// the client WebSocket.
fn upgrade(mut r: Reader<TcpStream>, target: &str, host: &str) -> WebSocket<TcpStream> {
    r.get_mut()
        .write_all(handshake(target, host).as_bytes())
        .expect("write handshake");
    let resp = r.response_head().expect("an answer to the handshake");
    assert_eq!(
        resp.status,
        101,
        "{:?}",
        String::from_utf8_lossy(&resp.raw_head)
    );
    assert!(
        resp.header("upgrade")
            .is_some_and(|v| v.eq_ignore_ascii_case("websocket")),
        "{:?}",
        resp.headers
    );
    assert!(
        resp.header("connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")),
        "{:?}",
        resp.headers
    );
    assert_eq!(
        resp.header("sec-websocket-accept"),
        Some(derive_accept_key(KEY.as_bytes()).as_str())
    );
    let (stream, rest) = r.into_parts();
    WebSocket::from_partially_read(stream, rest, Role::Client, None)
}

/// Text, binary, 1 MiB, 3 fragments, ping/pong, then the close handshake and the TCP close.
fn conversation(ws: &mut WebSocket<TcpStream>) {
    ws.send(Message::text("hello")).expect("send text");
    assert_eq!(ws.read().expect("echo"), Message::text("hello"));
    let bin = Bytes::from(vec![0u8, 1, 2, 255]);
    ws.send(Message::Binary(bin.clone())).expect("send binary");
    assert_eq!(ws.read().expect("echo"), Message::Binary(bin));
    let big = Bytes::from(pseudo_random_bytes(1024 * 1024, 9));
    ws.send(Message::Binary(big.clone())).expect("send 1 MiB");
    assert_eq!(ws.read().expect("echo"), Message::Binary(big));

    let parts: [(&str, OpCode, bool); 3] = [
        ("frag", OpCode::Data(Data::Text), false),
        ("ment", OpCode::Data(Data::Continue), false),
        ("ed", OpCode::Data(Data::Continue), true),
    ];
    for (text, opcode, fin) in parts {
        let frame = Frame::message(Bytes::from(text), opcode, fin);
        ws.write(Message::Frame(frame)).expect("write fragment");
    }
    ws.flush().expect("flush");
    assert_eq!(ws.read().expect("echo"), Message::text("fragmented"));

    ws.send(Message::Ping(Bytes::from_static(b"p1")))
        .expect("ping");
    assert_eq!(
        ws.read().expect("pong"),
        Message::Pong(Bytes::from_static(b"p1"))
    );

    assert_eq!(ws_close(ws, Some(1000)), Some(1000));
    // And the TCP connection ends.
    let mut rest = Reader::new(ws.get_mut().try_clone().expect("clone"));
    assert!(
        rest.closed(),
        "the connection stayed open after the close handshake"
    );
}

/// `GET ws://…` as absolute-form `http://` through a plain proxy connection.
fn absolute_form(driver: &str) {
    let origin = ws_echo_origin();
    let proxy = Proxy::start(driver, &[]);
    let url = origin.url("/chat");
    let mut ws = upgrade(Reader::new(proxy.connect()), &url, &origin.addr.to_string());
    conversation(&mut ws);
    // The origin closed after the close handshake; the relay ends once the client closes too.
    drop(ws);
    let line = proxy
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("lynxio::access") && l.contains(&format!(" url={url} "))
        })
        .unwrap_or_else(|| panic!("no access line:\n{}", proxy.log()));
    assert!(line.contains(" status=101 "), "{line}");
    assert!(line.contains(" upgrade=websocket "), "{line}");
    assert!(line.contains(" up="), "{line}");
    assert_no_panic(proxy);
}

/// An origin that answers the handshake with 404: a normal response, and the connection
/// stays HTTP (the next request on it works).
fn refused_upgrade_stays_http(driver: &str) {
    let origin = ws_echo_origin();
    let proxy = Proxy::start(driver, &[]);
    let mut r = Reader::new(proxy.connect());
    let host = origin.addr.to_string();
    let refused = roundtrip(
        &mut r,
        "GET",
        handshake(&origin.url("/reject"), &host).as_bytes(),
    );
    assert_eq!(refused.status, 404);
    assert_eq!(refused.body_str(), "no");
    let next = roundtrip(
        &mut r,
        "GET",
        format!(
            "GET {} HTTP/1.1\r\nHost: {host}\r\n\r\n",
            origin.url("/after")
        )
        .as_bytes(),
    );
    assert_eq!(next.status, 200);
    assert_eq!(next.body_str(), "plain");
}

/// Inside a CONNECT tunnel, after three keep-alive requests, an origin-form handshake; once
/// relayed (spliced), once inspected (with `/events` live, events are read).
fn in_tunnel_after_keepalive(driver: &str) {
    for inspect in [false, true] {
        in_tunnel(driver, inspect);
    }
}

fn in_tunnel(driver: &str, inspect: bool) {
    let origin = ws_echo_origin();
    let extra: &[&str] = if inspect {
        &["--admin", "127.0.0.1:0"]
    } else {
        &[]
    };
    let proxy = Proxy::start(driver, extra);
    // A live subscriber makes lynxio build events, so the session is inspected.
    let _events = proxy.admin.map(|admin| {
        let mut s = connect(admin);
        s.write_all(b"GET /events HTTP/1.1\r\nHost: a\r\n\r\n")
            .expect("subscribe");
        let mut r = Reader::new(s);
        assert_eq!(r.response_head().expect("SSE head").status, 200);
        r
    });
    let target = origin.addr.to_string();
    let mut s = proxy.connect();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes())
        .expect("CONNECT");
    let mut r = Reader::new(s);
    let est = r.response_head().expect("200");
    assert_eq!(est.status, 200);
    for i in 0..3 {
        let got = roundtrip(
            &mut r,
            "GET",
            format!("GET /k{i} HTTP/1.1\r\nHost: {target}\r\n\r\n").as_bytes(),
        );
        assert_eq!((got.status, got.body_str()), (200, "plain".to_owned()));
    }
    let mut ws = upgrade(r, "/chat", &target);
    conversation(&mut ws);
    drop(ws);
    let line = proxy
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains(" upgrade=websocket ")
        })
        .unwrap_or_else(|| panic!("the session did not end:\n{}", proxy.log()));
    assert_eq!(
        line.contains(" messages_up="),
        inspect,
        "inspected sessions count messages: {line}"
    );
    // The tunnel's own line counts what its exchanges moved, the WebSocket session included.
    let tunnel = proxy
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains("lynxio::access: tunnel")
        })
        .unwrap_or_else(|| panic!("no tunnel line:\n{}", proxy.log()));
    let up: u64 = tunnel
        .split(" up=")
        .nth(1)
        .and_then(|v| v.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no up= in {tunnel}"));
    assert!(
        up > 1024 * 1024,
        "the session's bytes are missing: {tunnel}"
    );
}

/// The origin sends a message in the same write as its 101: it reaches the client first.
fn origin_speaks_first(driver: &str) {
    let origin = ws_echo_origin();
    let proxy = Proxy::start(driver, &[]);
    let mut ws = upgrade(
        Reader::new(proxy.connect()),
        &origin.url("/greet"),
        &origin.addr.to_string(),
    );
    assert_eq!(ws.read().expect("greeting"), Message::text("hi"));
    conversation(&mut ws);
}

/// Waits for the WebSocket session's access line (it is written when the relay ends), then
/// stops the proxy and returns its capture.
fn session_events(proxy: Proxy, path: &std::path::Path) -> Vec<serde_json::Value> {
    proxy
        .wait_for_line(Duration::from_secs(5), |l| {
            l.contains(" upgrade=websocket ")
        })
        .unwrap_or_else(|| panic!("the session did not end:\n{}", proxy.log()));
    stop_and_read_capture(proxy, path)
}

/// With a capture, the session is inspected: every byte still passes (the whole conversation
/// works), and each message, ping/pong and close becomes an event with its direction, length,
/// fragments and first bytes; the session's end carries message counts.
fn inspected_with_capture(driver: &str) {
    let origin = ws_echo_origin();
    let path = capture_path("inspect", driver);
    let proxy = Proxy::start(
        driver,
        &[
            "--capture",
            path.to_str().expect("utf-8"),
            "--capture-bodies",
            "16",
        ],
    );
    let url = origin.url("/chat");
    let mut ws = upgrade(Reader::new(proxy.connect()), &url, &origin.addr.to_string());
    conversation(&mut ws);
    drop(ws);
    let events = session_events(proxy, &path);
    let open = events
        .iter()
        .find(|e| e["ev"] == "ws_open")
        .expect("ws_open");
    assert_eq!(open["url"], url.as_str());
    let id = open["id"].clone();
    let msgs: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["ev"] == "ws_message" && e["id"] == id)
        .collect();
    let find = |from: &str, opcode: &str, length: u64| {
        msgs.iter()
            .find(|m| m["from"] == from && m["opcode"] == opcode && m["length"] == length)
            .unwrap_or_else(|| panic!("no {from} {opcode} of {length} bytes in {msgs:#?}"))
    };
    assert_eq!(find("client", "text", 5)["data"]["data"], "hello");
    assert_eq!(find("server", "text", 5)["data"]["data"], "hello");
    let big = find("client", "binary", 1024 * 1024);
    assert_eq!(big["data"]["truncated"], true);
    assert_eq!(big["data"]["encoding"], "base64");
    let frag = find("client", "text", 10);
    assert_eq!(frag["fragments"], 3);
    assert_eq!(frag["data"]["data"], "fragmented");
    assert_eq!(find("client", "ping", 2)["data"]["data"], "p1");
    assert_eq!(find("server", "pong", 2)["data"]["data"], "p1");
    let closes: Vec<_> = events
        .iter()
        .filter(|e| e["ev"] == "ws_close" && e["id"] == id)
        .collect();
    assert!(
        closes
            .iter()
            .any(|c| c["from"] == "client" && c["code"] == 1000),
        "{closes:#?}"
    );
    assert!(closes.iter().any(|c| c["from"] == "server"), "{closes:#?}");
    let end = events
        .iter()
        .find(|e| e["ev"] == "end" && e["id"] == id)
        .expect("end");
    assert_eq!(end["status"], 101);
    assert_eq!(end["upgrade"]["protocol"], "websocket");
    assert_eq!(end["upgrade"]["messages_up"], 5, "{end}");
    assert_eq!(end["upgrade"]["messages_down"], 5, "{end}");
}

/// In inspect mode, an unmasked client frame (RFC 6455 §5.1) ends the session: the client gets
/// a close frame with 1002 and the connection ends, the frame never reaches the origin, and a
/// `ws_error` event and a warning say why.
fn protocol_error_closes_both(driver: &str) {
    let origin = ws_echo_origin();
    let path = capture_path("bad-frame", driver);
    let proxy = Proxy::start(driver, &["--capture", path.to_str().expect("utf-8")]);
    let mut r = Reader::new(proxy.connect());
    r.get_mut()
        .write_all(handshake(&origin.url("/chat"), &origin.addr.to_string()).as_bytes())
        .expect("handshake");
    assert_eq!(r.response_head().expect("101").status, 101);
    r.get_mut()
        .write_all(b"\x81\x02hi")
        .expect("unmasked frame");
    let back = r.read_to_close();
    assert!(back.len() >= 4, "no close frame: {back:?}");
    assert_eq!(back[0], 0x88, "a close frame: {back:?}");
    assert_eq!(u16::from_be_bytes([back[2], back[3]]), 1002, "{back:?}");
    assert!(
        proxy
            .wait_for_line(Duration::from_secs(5), |l| l
                .contains("WebSocket protocol error"))
            .is_some(),
        "{}",
        proxy.log()
    );
    let events = stop_and_read_capture(proxy, &path);
    let err = events
        .iter()
        .find(|e| e["ev"] == "ws_error")
        .unwrap_or_else(|| panic!("no ws_error: {events:#?}"));
    assert_eq!(
        (err["from"].clone(), err["code"].clone()),
        ("client".into(), 1002.into())
    );
    let end = events.iter().find(|e| e["ev"] == "end").expect("end");
    assert_eq!(end["outcome"], "aborted");
    assert_eq!(end["upgrade"]["end"], "client protocol error");
    assert!(
        !events.iter().any(|e| e["ev"] == "ws_message"),
        "the bad frame was reported as a message"
    );
}

/// permessage-deflate negotiated end to end: compressed frames (RSV1) pass byte-exact both
/// ways in inspect mode, and their events say `compressed` (RFC 7692 §7.2.3.1's "Hello").
fn deflate_passes_inspection(driver: &str) {
    const HELLO_DEFLATED: &[u8] = &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut client_frame = vec![0xc1, 0x80 | HELLO_DEFLATED.len() as u8];
    client_frame.extend_from_slice(&MASK);
    client_frame.extend(
        HELLO_DEFLATED
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ MASK[i % 4]),
    );
    let mut server_frame = vec![0xc1, HELLO_DEFLATED.len() as u8];
    server_frame.extend_from_slice(HELLO_DEFLATED);
    let (tx, rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let tx = std::sync::Mutex::new(tx);
    let (want, reply) = (client_frame.len(), server_frame.clone());
    let origin = Origin::start(move |s| {
        let mut r = Reader::new(s);
        let Some(req) = r.request_head() else { return };
        let key = req.header("sec-websocket-key").unwrap_or_default();
        let answer = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
            derive_accept_key(key.as_bytes())
        );
        if r.get_mut().write_all(answer.as_bytes()).is_err() {
            return;
        }
        let got = r.take_exact(want).unwrap_or_default();
        let _ = tx.lock().map(|t| t.send(got));
        let _ = r.get_mut().write_all(&reply);
        let _ = r.read_to_close();
    });
    let path = capture_path("deflate", driver);
    let proxy = Proxy::start(
        driver,
        &[
            "--capture",
            path.to_str().expect("utf-8"),
            "--capture-bodies",
            "64",
        ],
    );
    let mut r = Reader::new(proxy.connect());
    let mut req = handshake(&origin.url("/z"), &origin.addr.to_string());
    req.insert_str(
        req.len() - 2,
        "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    r.get_mut().write_all(req.as_bytes()).expect("handshake");
    let resp = r.response_head().expect("101");
    assert_eq!(resp.status, 101);
    assert_eq!(
        resp.header("sec-websocket-extensions"),
        Some("permessage-deflate")
    );
    r.get_mut()
        .write_all(&client_frame)
        .expect("compressed frame");
    let got = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("origin got the frame");
    assert_eq!(
        got, client_frame,
        "the compressed frame was not passed byte-exact"
    );
    assert_eq!(
        r.take_exact(server_frame.len()).expect("server frame"),
        server_frame
    );
    drop(r);
    let events = session_events(proxy, &path);
    let open = events
        .iter()
        .find(|e| e["ev"] == "ws_open")
        .expect("ws_open");
    assert_eq!(open["extensions"], "permessage-deflate");
    let msgs: Vec<_> = events.iter().filter(|e| e["ev"] == "ws_message").collect();
    assert_eq!(msgs.len(), 2, "{msgs:#?}");
    for m in msgs {
        assert_eq!(m["compressed"], true, "{m}");
        assert_eq!(m["length"], HELLO_DEFLATED.len(), "{m}");
    }
}

drivers!(
    deflate_passes_inspection,
    inspected_with_capture,
    protocol_error_closes_both,
    absolute_form,
    refused_upgrade_stays_http,
    in_tunnel_after_keepalive,
    origin_speaks_first
);
