//! Capture → HAR: every converted document goes through `assert_har_1_2`, then each test checks
//! the values it is about.

use std::io::{self, BufRead, Read};

use serde_json::{Value, json};

use super::convert;
use super::decode::{cookie_date, form_decode};

mod build;
mod validate;

use build::*;
use validate::assert_har_1_2;

#[test]
fn empty_capture_is_an_empty_log() {
    let (har, warnings) = run_text("");
    assert!(warnings.is_empty());
    assert_eq!(har["log"]["version"], "1.2");
    assert_eq!(har["log"]["creator"]["name"], "lynxio");
    assert_eq!(har["log"]["creator"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(har["log"]["entries"], json!([]));
}

#[test]
fn completed_exchange_has_every_part() {
    let e = entries(&[
        request("0-1", "http://a.test/x?q=1", json!({})),
        response("0-1", 200, json!({})),
        end("0-1", json!({})),
    ]);
    assert_eq!(e.len(), 1);
    let e = &e[0];
    assert_eq!(e["startedDateTime"], TS);
    assert_eq!(e["time"], 20.25);
    assert_eq!(e["connection"], "0-1");
    assert_eq!(e["serverIPAddress"], "93.184.216.34");
    assert!(e.get("comment").is_none() && e.get("_error").is_none());
    assert_eq!(e["cache"], json!({}));

    let req = &e["request"];
    assert_eq!(req["method"], "GET");
    assert_eq!(req["url"], "http://a.test/x?q=1");
    assert_eq!(req["httpVersion"], "HTTP/1.1");
    assert_eq!(
        pairs(&req["headers"]),
        owned(&[("Host", "a.test"), ("Accept", "*/*")])
    );
    assert_eq!(req["bodySize"], 0);
    assert!(req.get("postData").is_none());
    // "GET http://a.test/x?q=1 HTTP/1.1\r\n" + "Host: a.test\r\n" + "Accept: */*\r\n" + "\r\n"
    assert_eq!(req["headersSize"], 34 + 14 + 13 + 2);

    let resp = &e["response"];
    assert_eq!(resp["status"], 200);
    assert_eq!(resp["statusText"], "OK");
    assert_eq!(resp["httpVersion"], "HTTP/1.1");
    assert_eq!(resp["content"]["size"], 5);
    assert_eq!(resp["content"]["mimeType"], "text/plain");
    assert!(resp["content"].get("text").is_none());
    assert_eq!(resp["redirectURL"], "");
    assert_eq!(resp["bodySize"], 5);
    // "HTTP/1.1 200 OK\r\n" + "Content-Type: text/plain\r\n" + "Content-Length: 5\r\n" + "\r\n"
    assert_eq!(resp["headersSize"], 17 + 26 + 19 + 2);

    // connect 4.5, first byte at 12.5, end at 20.25.
    assert_eq!(
        e["timings"],
        json!({
            "blocked": -1, "dns": -1, "connect": 4.5, "send": 0, "wait": 8.0,
            "receive": 7.75, "ssl": -1,
        })
    );
    assert_eq!(e["_lynxio"]["outcome"], "completed");
    assert_eq!(e["_lynxio"]["from"], "origin");
}

#[test]
fn query_string_is_split_and_decoded() {
    let url =
        "http://a.test/s?q=caf%C3%A9+au%20lait&empty=&flag&a%2Bb=1%3D2&&bad=%zz%4&plus=%2B#frag";
    let e = entries(&[request("0-1", url, json!({})), end("0-1", json!({}))]);
    let req = &e[0]["request"];
    assert_eq!(
        pairs(&req["queryString"]),
        owned(&[
            ("q", "café au lait"),
            ("empty", ""),
            ("flag", ""),
            ("a+b", "1=2"),
            ("bad", "%zz%4"),
            ("plus", "+"),
        ])
    );
    // The fragment is not part of a HAR url.
    assert_eq!(req["url"], url.split('#').next().unwrap());
    // No query, or an empty one: no parameters.
    for url in ["http://a.test/", "http://a.test/?"] {
        let e = entries(&[request("0-1", url, json!({}))]);
        assert_eq!(e[0]["request"]["queryString"], json!([]));
    }
}

#[test]
fn form_decoding_edge_cases() {
    assert_eq!(form_decode("a+b%20c"), "a b c");
    assert_eq!(form_decode("%"), "%");
    assert_eq!(form_decode("100%"), "100%");
    assert_eq!(form_decode("%4"), "%4");
    assert_eq!(form_decode("%e2%9c%93"), "✓");
    // Not UTF-8 after decoding: replacement character, no panic.
    assert_eq!(form_decode("%ff"), "\u{fffd}");
}

#[test]
fn request_cookies_come_from_cookie_headers() {
    let headers = json!([
        ["Host", "a.test"],
        ["Cookie", "sid=abc123; theme=dark ;  x=a=b"],
        ["cookie", "solo; empty="],
    ]);
    let e = entries(&[request(
        "0-1",
        "http://a.test/",
        json!({ "headers": headers }),
    )]);
    assert_eq!(
        pairs(&e[0]["request"]["cookies"]),
        owned(&[
            ("sid", "abc123"),
            ("theme", "dark"),
            ("x", "a=b"),
            ("", "solo"),
            ("empty", ""),
        ])
    );
    assert_eq!(e[0]["response"]["cookies"], json!([]));
}

#[test]
fn response_cookies_come_from_set_cookie_with_attributes() {
    let headers = json!([
        [
            "Set-Cookie",
            "sid=abc; Path=/app; Domain=.a.test; Expires=Wed, 21 Oct 2015 07:28:00 GMT; HttpOnly; Secure; SameSite=Lax"
        ],
        ["set-cookie", "plain=1"],
        [
            "Set-Cookie",
            "ttl=2; Max-Age=3600; Expires=Wed, 21 Oct 2015 07:28:00 GMT"
        ],
        [
            "Set-Cookie",
            "old=3; expires=Thursday, 01-Jan-70 00:00:01 GMT"
        ],
        ["Set-Cookie", "junk=4; Expires=not a date"],
        ["Set-Cookie", ""],
    ]);
    let e = entries(&[
        request("0-1", "http://a.test/", json!({})),
        response("0-1", 200, json!({ "headers": headers, "ttfb_ms": 1000.0 })),
        end("0-1", json!({})),
    ]);
    let cookies = e[0]["response"]["cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 5, "{cookies:?}");
    assert_eq!(
        cookies[0],
        json!({
            "name": "sid", "value": "abc", "path": "/app", "domain": ".a.test",
            "expires": "2015-10-21T07:28:00Z", "httpOnly": true, "secure": true,
        })
    );
    assert_eq!(cookies[1], json!({ "name": "plain", "value": "1" }));
    // Max-Age wins, counted from when the response head arrived (ts + 1 s).
    assert_eq!(cookies[2]["expires"], "2026-12-01T19:00:01Z");
    assert_eq!(cookies[3]["expires"], "1970-01-01T00:00:01Z");
    assert!(cookies[4].get("expires").is_none());
    assert!(cookies[0].get("sameSite").is_none());
}

#[test]
fn cookie_dates_in_their_several_forms() {
    assert_eq!(
        cookie_date("Sun, 06 Nov 1994 08:49:37 GMT").as_deref(),
        Some("1994-11-06T08:49:37Z")
    );
    assert_eq!(
        cookie_date("Sunday, 06-Nov-94 08:49:37 GMT").as_deref(),
        Some("1994-11-06T08:49:37Z")
    );
    assert_eq!(
        cookie_date("Sun Nov  6 08:49:37 1994").as_deref(),
        Some("1994-11-06T08:49:37Z")
    );
    assert_eq!(
        cookie_date("Thu, 29 Feb 2024 23:59:59 GMT").as_deref(),
        Some("2024-02-29T23:59:59Z")
    );
    for bad in [
        "",
        "tomorrow",
        "Thu, 29 Feb 2023 00:00:00 GMT",
        "Thu, 01 Jan 2024 24:00:00 GMT",
        "Thu, 01 Foo 2024 00:00:00 GMT",
        "01 Jan 1500 00:00:00",
    ] {
        assert_eq!(cookie_date(bad), None, "{bad}");
    }
}

#[test]
fn captured_bodies_become_post_data_and_content() {
    let req_headers = json!([
        ["Host", "a.test"],
        ["Content-Type", "application/x-www-form-urlencoded"]
    ]);
    let resp_headers = json!([["Content-Type", "text/html; charset=utf-8"]]);
    let e = entries(&[
        request(
            "0-1",
            "http://a.test/form",
            json!({ "method": "POST", "headers": req_headers }),
        ),
        response("0-1", 200, json!({ "headers": resp_headers })),
        end(
            "0-1",
            json!({
                "request_body_bytes": 15, "response_body_bytes": 11,
                "request_body": { "encoding": "utf8", "data": "a=1&b=x+y%21&c", "truncated": false },
                "response_body": { "encoding": "utf8", "data": "<p>hé</p>", "truncated": false },
            }),
        ),
    ]);
    let req = &e[0]["request"];
    assert_eq!(req["bodySize"], 15);
    let post = &req["postData"];
    assert_eq!(post["mimeType"], "application/x-www-form-urlencoded");
    assert_eq!(post["text"], "a=1&b=x+y%21&c");
    assert_eq!(
        pairs(&post["params"]),
        owned(&[("a", "1"), ("b", "x y!"), ("c", "")])
    );
    assert!(post.get("comment").is_none());
    let content = &e[0]["response"]["content"];
    assert_eq!(content["text"], "<p>hé</p>");
    assert_eq!(content["mimeType"], "text/html; charset=utf-8");
    assert_eq!(content["size"], 11);
    assert!(content.get("encoding").is_none() && content.get("comment").is_none());
}

#[test]
fn base64_and_truncated_bodies_are_marked() {
    let resp_headers = json!([["Content-Type", "image/png"], ["Content-Encoding", "gzip"]]);
    let e = entries(&[
        request("0-1", "https://a.test/up", json!({ "method": "PUT" })),
        response("0-1", 201, json!({ "headers": resp_headers })),
        end(
            "0-1",
            json!({
                "request_body_bytes": 4000, "response_body_bytes": 9000,
                "request_body": { "encoding": "base64", "data": "/wAQ", "truncated": true },
                "response_body": { "encoding": "base64", "data": "iVBORw0KGgo=", "truncated": true },
            }),
        ),
    ]);
    let post = &e[0]["request"]["postData"];
    // No Content-Type on the request: empty mimeType, and no params for a non-form body.
    assert_eq!(post["mimeType"], "");
    assert!(post.get("params").is_none());
    assert_eq!(post["text"], "/wAQ");
    assert_eq!(post["_encoding"], "base64");
    let note = post["comment"].as_str().unwrap();
    assert!(note.contains("base64"), "{note}");
    assert!(note.contains("first 3 of 4000 bytes"), "{note}");

    let content = &e[0]["response"]["content"];
    assert_eq!(content["text"], "iVBORw0KGgo=");
    assert_eq!(content["encoding"], "base64");
    assert_eq!(content["size"], 9000);
    assert_eq!(content["mimeType"], "image/png");
    let note = content["comment"].as_str().unwrap();
    assert!(note.contains("first 8 of 9000 bytes"), "{note}");
    assert!(note.contains("Content-Encoding gzip"), "{note}");
    assert_eq!(e[0]["response"]["statusText"], "Created");
}

#[test]
fn tunnels_are_left_out_and_intercepted_https_kept() {
    let connect_headers = json!([["Host", "a.test:443"]]);
    let e = entries(&[
        request(
            "0-1",
            "http://a.test:443",
            json!({ "method": "CONNECT", "headers": connect_headers }),
        ),
        json!({"ev": "tunnel_open", "id": "0-1", "ts": TS, "client": "c", "target": "a.test:443",
               "sni": "a.test", "alpn": null, "kind": "intercepted"})
        .to_string(),
        request(
            "0-2",
            "https://a.test/secure?x=1",
            json!({ "ts": "2026-12-01T18:00:00.200Z" }),
        ),
        response("0-2", 200, json!({ "ttfb_ms": 40.0 })),
        end(
            "0-2",
            json!({ "upstream": { "target": "a.test:443", "reused": false, "connect_ms": 30.0 },
                    "duration_ms": 50.0 }),
        ),
        json!({"ev": "tunnel_close", "id": "0-1", "target": "a.test:443", "sni": "a.test",
               "alpn": null, "kind": "intercepted", "bytes_up": 0, "bytes_down": 5,
               "duration_ms": 60.0, "end": "done", "error": null})
        .to_string(),
        // A refused CONNECT has a response and an end too: not an exchange either.
        request("0-3", "http://b.test:443", json!({ "method": "CONNECT" })),
        response("0-3", 403, json!({ "from": "lynxio" })),
        end(
            "0-3",
            json!({ "status": 403, "outcome": "answered", "upstream": null }),
        ),
        json!({"ev": "error", "id": "0-4", "ts": TS, "client": "c", "stage": "tls_handshake",
               "status": null, "message": "bad handshake"})
        .to_string(),
    ]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert_eq!(e[0]["request"]["url"], "https://a.test/secure?x=1");
    assert_eq!(pairs(&e[0]["request"]["queryString"]), owned(&[("x", "1")]));
    // The intercepted request arrived in origin-form inside TLS:
    // "GET /secure?x=1 HTTP/1.1\r\n" + "Host: a.test\r\n" + "Accept: */*\r\n" + "\r\n".
    assert_eq!(e[0]["request"]["headersSize"], 26 + 14 + 13 + 2);
    // A host name, not an address: no serverIPAddress.
    assert!(e[0].get("serverIPAddress").is_none());
    assert_eq!(e[0]["timings"]["connect"], 30.0);
    assert_eq!(e[0]["timings"]["wait"], 10.0);
    assert_eq!(e[0]["timings"]["receive"], 10.0);
}

#[test]
fn malformed_lines_are_skipped_with_their_line_numbers() {
    let good_request = request("0-1", "http://a.test/", json!({}));
    let mut text = [
        good_request.as_str(),                         // 1
        "",                                            // 2: blank, silent
        "this is not json",                            // 3
        "[1, 2, 3]",                                   // 4
        r#"{"id": "0-1"}"#,                            // 5: no ev
        r#"{"ev": 7, "id": "0-1"}"#,                   // 6: ev not a string
        r#"{"ev": "response", "status": 200}"#,        // 7: no id
        r#"{"ev": "end", "id": 12}"#,                  // 8: id not a string
        r#"{"ev": "ws_frame", "id": 3, "data": "x"}"#, // 9: unknown kind, silent
        "   \t ",                                      // 10: blank, silent
    ]
    .join("\n");
    text.push('\n');
    let bad_status = response("0-1", 200, json!({ "status": "200" }));
    let bad_headers = response("0-1", 200, json!({ "headers": [["Only-Name"]] }));
    let bad_end = end("0-1", json!({ "duration_ms": "fast" }));
    let bad_body = end(
        "0-1",
        json!({ "response_body": { "encoding": "rot13", "data": "x", "truncated": false } }),
    );
    let orphan = response("9-9", 200, json!({}));
    let bad_ts = request("0-2", "http://a.test/", json!({ "ts": "yesterday" }));
    for l in [
        bad_status.as_str(),              // 11
        bad_headers.as_str(),             // 12
        &response("0-1", 204, json!({})), // 13: good
        bad_end.as_str(),                 // 14
        bad_body.as_str(),                // 15
        orphan.as_str(),                  // 16
        bad_ts.as_str(),                  // 17
        &response("0-1", 200, json!({})), // 18: a second response
    ] {
        text.push_str(l);
        text.push('\n');
    }
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(b"{\"ev\": \"end\", \"id\": \"\xff\"}\n"); // 19: not UTF-8
    bytes.extend_from_slice(end("0-1", json!({ "status": 204 })).as_bytes()); // 20: good

    let mut warnings = Vec::new();
    let har = convert(&bytes[..], &mut |line, why| {
        warnings.push((line, why.to_owned()))
    })
    .unwrap();
    assert_har_1_2(&har);
    let lines: Vec<usize> = warnings.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lines,
        [3, 4, 5, 6, 7, 8, 11, 12, 14, 15, 16, 17, 18, 19],
        "{warnings:#?}"
    );
    let why = |line: usize| {
        warnings
            .iter()
            .find(|(l, _)| *l == line)
            .map(|(_, w)| w.as_str())
            .unwrap_or_default()
    };
    assert!(why(3).starts_with("not JSON"), "{}", why(3));
    assert_eq!(why(4), "not a JSON object");
    assert_eq!(why(5), "missing `ev`");
    assert_eq!(why(6), "`ev` is not a string");
    assert_eq!(why(7), "missing `id`");
    assert_eq!(why(8), "`id` is not a string");
    assert!(
        why(11).contains("`status` is not an HTTP status code"),
        "{}",
        why(11)
    );
    assert!(why(12).contains("`headers`"), "{}", why(12));
    assert!(
        why(14).contains("`duration_ms` is not a number"),
        "{}",
        why(14)
    );
    assert!(why(15).contains("rot13"), "{}", why(15));
    assert!(why(16).contains("9-9"), "{}", why(16));
    assert!(why(17).contains("`ts`"), "{}", why(17));
    assert!(why(18).contains("second response"), "{}", why(18));
    assert_eq!(why(19), "not UTF-8");

    // The good lines still make one complete exchange.
    let entries = har["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["response"]["status"], 204);
    assert_eq!(entries[0]["response"]["statusText"], "No Content");
    assert_eq!(entries[0]["time"], 20.25);
}

#[test]
fn crlf_line_ends_and_a_byte_order_mark_are_accepted() {
    let text = format!(
        "\u{feff}{}\r\n{}\r\n{}\r\n",
        request("0-1", "http://a.test/", json!({})),
        response("0-1", 200, json!({})),
        end("0-1", json!({}))
    );
    let (har, warnings) = run_text(&text);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(har["log"]["entries"][0]["response"]["status"], 200);
    assert!(har["log"]["entries"][0].get("comment").is_none());
}

#[test]
fn request_without_end_keeps_what_is_known() {
    let e = entries(&[
        request("0-1", "http://a.test/slow", json!({})),
        response("0-1", 200, json!({ "ttfb_ms": 7.5 })),
        request(
            "0-2",
            "http://a.test/never",
            json!({ "ts": "2026-12-01T18:00:01Z" }),
        ),
    ]);
    assert_eq!(e.len(), 2);
    // Head received, body never finished.
    let (a, b) = (&e[0], &e[1]);
    assert_eq!(a["request"]["bodySize"], -1);
    assert_eq!(a["response"]["bodySize"], -1);
    assert_eq!(a["response"]["status"], 200);
    assert_eq!(a["response"]["content"]["size"], 0);
    assert_eq!(a["time"], 7.5);
    assert_eq!(a["timings"]["wait"], 7.5);
    assert_eq!(a["timings"]["receive"], 0.0);
    assert_eq!(a["timings"]["connect"], -1);
    assert!(a["comment"].as_str().unwrap().contains("capture ends"));
    // Nothing after the request head.
    assert_eq!(b["startedDateTime"], "2026-12-01T18:00:01.000Z");
    assert_eq!(b["response"]["status"], 0);
    assert_eq!(b["response"]["statusText"], "");
    assert_eq!(b["response"]["httpVersion"], "");
    assert_eq!(b["response"]["headersSize"], -1);
    assert_eq!(b["response"]["content"]["mimeType"], "x-unknown");
    assert_eq!(b["time"], 0.0);
    assert!(b.get("_error").is_none());
}

#[test]
fn aborted_exchange_without_response_has_status_0_and_the_reason() {
    let e = entries(&[
        request("0-1", "http://down.test/", json!({})),
        end(
            "0-1",
            json!({
                "status": null, "response_body_bytes": 0, "duration_ms": 3000.0,
                "outcome": "aborted", "aborted_by": "origin", "reason": "origin reset the connection",
                "upstream": { "target": "10.0.0.9:80", "reused": false, "connect_ms": 1.25 },
            }),
        ),
    ]);
    let e = &e[0];
    assert_eq!(e["response"]["status"], 0);
    assert_eq!(e["response"]["statusText"], "");
    assert_eq!(e["response"]["headers"], json!([]));
    assert_eq!(e["response"]["redirectURL"], "");
    assert_eq!(e["_error"], "origin reset the connection");
    assert_eq!(
        e["comment"],
        "aborted by origin: origin reset the connection"
    );
    assert_eq!(e["serverIPAddress"], "10.0.0.9");
    assert_eq!(e["time"], 3000.0);
    // Connected, then waited for a response head that never came.
    assert_eq!(e["timings"]["connect"], 1.25);
    assert_eq!(e["timings"]["wait"], 2998.75);
    assert_eq!(e["timings"]["receive"], 0.0);
}

#[test]
fn answered_by_lynxio() {
    // A local answer with a response event.
    let e = entries(&[
        request("0-1", "http://blocked.test/", json!({})),
        response(
            "0-1",
            403,
            json!({ "from": "lynxio", "ttfb_ms": 0.1, "headers": [["Content-Length", "0"]] }),
        ),
        end(
            "0-1",
            json!({ "status": 403, "response_body_bytes": 0, "duration_ms": 0.3,
                    "outcome": "answered", "reason": "blocked by rule", "upstream": null,
                    "rule": "no-ads" }),
        ),
    ]);
    let e = &e[0];
    assert_eq!(e["response"]["status"], 403);
    assert_eq!(e["response"]["statusText"], "Forbidden");
    assert_eq!(e["response"]["content"]["mimeType"], "x-unknown");
    assert_eq!(e["comment"], "answered by lynxio: blocked by rule");
    assert!(e.get("_error").is_none());
    assert_eq!(e["_lynxio"]["rule"], "no-ads");
    assert_eq!(e["_lynxio"]["from"], "lynxio");
    assert_eq!(e["timings"]["connect"], -1);
    assert_eq!(e["timings"]["wait"], 0.1);
    assert_eq!(e["timings"]["receive"], 0.2);
    assert!(e.get("serverIPAddress").is_none());

    // The end says what the client got even if the response event is missing.
    let e = entries(&[
        request("0-2", "http://x.test/", json!({})),
        end(
            "0-2",
            json!({ "status": 502, "outcome": "answered", "reason": "connect refused",
                    "upstream": null }),
        ),
    ]);
    assert_eq!(e[0]["response"]["status"], 502);
    assert_eq!(e[0]["response"]["statusText"], "Bad Gateway");
    assert_eq!(e[0]["comment"], "answered by lynxio: connect refused");
}

#[test]
fn reused_connection_has_no_connect_time() {
    let e = entries(&[
        request("0-1", "http://a.test/", json!({})),
        response("0-1", 200, json!({ "ttfb_ms": 2.0 })),
        end(
            "0-1",
            json!({ "duration_ms": 3.0,
                    "upstream": { "target": "[::1]:8080", "reused": true, "connect_ms": 0.0 } }),
        ),
    ]);
    assert_eq!(e[0]["timings"]["connect"], -1);
    assert_eq!(e[0]["timings"]["wait"], 2.0);
    assert_eq!(e[0]["timings"]["receive"], 1.0);
    assert_eq!(e[0]["serverIPAddress"], "::1");
    assert_eq!(e[0]["_lynxio"]["upstream"]["reused"], true);
}

#[test]
fn inconsistent_durations_still_add_up() {
    // First byte after the end, connect longer than everything: clamped, never negative.
    let e = entries(&[
        request("0-1", "http://a.test/", json!({})),
        response("0-1", 200, json!({ "ttfb_ms": 50.0 })),
        end(
            "0-1",
            json!({ "duration_ms": 10.0,
                    "upstream": { "target": "a.test:80", "reused": false, "connect_ms": 80.0 } }),
        ),
        request("0-2", "http://a.test/", json!({})),
        response("0-2", 200, json!({ "ttfb_ms": -3.0 })),
        end("0-2", json!({ "duration_ms": 1e300, "upstream": null })),
    ]);
    assert_eq!(e[0]["time"], 10.0);
    assert_eq!(e[0]["timings"]["connect"], 10.0);
    assert_eq!(e[0]["timings"]["wait"], 0.0);
    assert_eq!(e[0]["timings"]["receive"], 0.0);
    assert_eq!(e[1]["timings"]["wait"], 0.0);
    assert!(e[1]["time"].as_f64().unwrap() > 0.0);
}

#[test]
fn entries_are_in_request_order() {
    let at = |t: &str| json!({ "ts": format!("2026-12-01T18:00:0{t}Z") });
    let e = entries(&[
        request("0-1", "http://a.test/third", at("3.000")),
        request("1-1", "http://a.test/first", at("1.000")),
        request("0-2", "http://a.test/second-a", at("2.000")),
        request("1-2", "http://a.test/second-b", at("2.000")),
        end("1-1", json!({})),
    ]);
    let urls: Vec<&str> = e
        .iter()
        .map(|e| e["request"]["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "http://a.test/first",
            "http://a.test/second-a",
            "http://a.test/second-b",
            "http://a.test/third"
        ]
    );
    // The end found its request regardless of order.
    assert_eq!(e[0]["time"], 20.25);
}

#[test]
fn an_id_reused_by_a_later_run_starts_a_new_exchange() {
    // Two lynxio runs appending to one capture file: ids start over.
    let e = entries(&[
        request("0-0", "http://a.test/run1", json!({})),
        end("0-0", json!({ "duration_ms": 1.0 })),
        request(
            "0-0",
            "http://a.test/run2",
            json!({ "ts": "2026-12-02T09:00:00.000Z" }),
        ),
        end("0-0", json!({ "duration_ms": 2.0 })),
    ]);
    assert_eq!(e.len(), 2);
    assert_eq!(e[0]["request"]["url"], "http://a.test/run1");
    assert_eq!(e[0]["time"], 1.0);
    assert_eq!(e[1]["request"]["url"], "http://a.test/run2");
    assert_eq!(e[1]["time"], 2.0);
}

#[test]
fn redirects_and_status_texts() {
    let e = entries(&[
        request("0-1", "http://a.test/old", json!({})),
        response(
            "0-1",
            301,
            json!({ "headers": [["location", "https://a.test/new"]] }),
        ),
        end("0-1", json!({ "status": 301 })),
        request("0-2", "http://a.test/odd", json!({})),
        response("0-2", 299, json!({ "version": "HTTP/1.0" })),
        end("0-2", json!({ "status": 299 })),
        request("0-3", "http://a.test/tea", json!({})),
        response("0-3", 418, json!({})),
        end("0-3", json!({ "status": 418 })),
    ]);
    assert_eq!(e[0]["response"]["redirectURL"], "https://a.test/new");
    assert_eq!(e[0]["response"]["statusText"], "Moved Permanently");
    assert_eq!(e[1]["response"]["statusText"], "");
    assert_eq!(e[1]["response"]["httpVersion"], "HTTP/1.0");
    assert_eq!(e[2]["response"]["statusText"], "I'm a teapot");
}

/// Yields its bytes, then fails.
struct Failing<'a>(&'a [u8]);

impl Read for Failing<'_> {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        Err(io::Error::other("disk on fire"))
    }
}

impl BufRead for Failing<'_> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.0.is_empty() {
            Err(io::Error::other("disk on fire"))
        } else {
            Ok(self.0)
        }
    }

    fn consume(&mut self, n: usize) {
        self.0 = self.0.get(n..).unwrap_or_default();
    }
}

#[test]
fn read_errors_are_returned() {
    let first = format!("{}\n", request("0-1", "http://a.test/", json!({})));
    let mut warned = false;
    let err = convert(Failing(first.as_bytes()), &mut |_, _| warned = true).unwrap_err();
    assert_eq!(err.to_string(), "disk on fire");
    assert!(!warned);
}

#[test]
fn the_validator_rejects_broken_documents() {
    let good = run(&[
        request("0-1", "http://a.test/?a=1", json!({})),
        response("0-1", 200, json!({})),
        end("0-1", json!({})),
    ])
    .0;
    type Break = fn(&mut Value);
    let breaks: &[(&str, Break)] = &[
        ("log.version", |h| h["log"]["version"] = json!("1.1")),
        ("creator", |h| {
            h["log"].as_object_mut().unwrap().remove("creator");
        }),
        ("entries", |h| h["log"]["entries"] = json!({})),
        ("startedDateTime", |h| {
            h["log"]["entries"][0]["startedDateTime"] = json!("yesterday")
        }),
        ("time", |h| h["log"]["entries"][0]["time"] = json!("20")),
        ("status", |h| {
            h["log"]["entries"][0]["response"]["status"] = json!("200")
        }),
        ("header value", |h| {
            h["log"]["entries"][0]["request"]["headers"][0]["value"] = json!(1)
        }),
        ("queryString", |h| {
            h["log"]["entries"][0]["request"]
                .as_object_mut()
                .unwrap()
                .remove("queryString");
        }),
        ("content.mimeType", |h| {
            h["log"]["entries"][0]["response"]["content"]
                .as_object_mut()
                .unwrap()
                .remove("mimeType");
        }),
        ("bodySize", |h| {
            h["log"]["entries"][0]["response"]["bodySize"] = json!(-2)
        }),
        ("cache", |h| h["log"]["entries"][0]["cache"] = json!(null)),
        ("wait", |h| {
            h["log"]["entries"][0]["timings"]["wait"] = json!(-1)
        }),
        ("sum", |h| {
            h["log"]["entries"][0]["timings"]["receive"] = json!(99.0)
        }),
        ("unknown field", |h| {
            h["log"]["entries"][0]["extra"] = json!(1)
        }),
    ];
    for (what, break_it) in breaks {
        let mut broken = good.clone();
        break_it(&mut broken);
        let caught = std::panic::catch_unwind(|| assert_har_1_2(&broken));
        assert!(caught.is_err(), "validator accepted broken {what}");
    }
}

#[test]
fn request_head_size_uses_the_target_form_the_client_sent() {
    let size = |url: &str| {
        let e = entries(&[request("0-1", url, json!({ "headers": [] }))]);
        e[0]["request"]["headersSize"].as_i64().unwrap()
    };
    // "GET " + target + " HTTP/1.1\r\n" + "\r\n"
    let head = |target: &str| (4 + target.len() + 11 + 2) as i64;
    assert_eq!(size("http://a.test/p?q"), head("http://a.test/p?q"));
    assert_eq!(size("https://a.test/p?q"), head("/p?q"));
    assert_eq!(size("https://a.test"), head("/"));
    assert_eq!(size("https://a.test?q=1"), head("/?q=1"));
    assert_eq!(size("https://a.test/p#frag"), head("/p"));
}
