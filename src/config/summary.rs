//! `lynxio check-config`: the resolved [`Config`] written back as TOML-like `key = value` lines
//! (defaults filled in, durations in the `5s` form, secrets never shown), so an operator sees
//! exactly what a start or a SIGHUP would run with. The output is for people, not a file to
//! load: rules are summarised by count and name.

use std::fmt::Write;

use super::{Config, LogFormat};
use crate::observe::hub::CaptureTarget;

fn quoted(s: &str) -> String {
    format!("{s:?}")
}

fn list<T: ToString>(items: impl IntoIterator<Item = T>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| quoted(&i.to_string())).collect();
    format!("[{}]", items.join(", "))
}

fn dur(d: std::time::Duration) -> String {
    quoted(&humantime::format_duration(d).to_string())
}

impl Config {
    /// The effective settings, one `key = value` line each, with `#` comments where a value
    /// needs a word of explanation.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: String| {
            let _ = writeln!(out, "{key} = {value}");
        };
        line("listen", list(&self.listen));
        line("workers", self.workers.to_string());
        line("pin", (!self.cpus.is_empty()).to_string());
        line("cpus", list(&self.cpus));
        line(
            "driver",
            quoted(&format!("{:?}", self.driver).to_ascii_lowercase()),
        );
        line("ring_entries", self.ring_entries.to_string());
        line(
            "sqpoll",
            self.sqpoll_idle_ms
                .map_or_else(|| quoted("off"), |ms| ms.to_string()),
        );
        line(
            "resolve",
            list(self.resolve.iter().map(|r| {
                let addrs: Vec<String> = r.addrs.iter().map(ToString::to_string).collect();
                format!("{}:{}:{}", r.host, r.port, addrs.join(","))
            })),
        );
        line(
            "log",
            quoted(self.log.as_deref().unwrap_or("(RUST_LOG, else info)")),
        );
        line(
            "log_format",
            quoted(match self.log_format {
                LogFormat::Text => "text",
                LogFormat::Json => "json",
            }),
        );
        let t = &self.timeouts;
        line("client_head_timeout", dur(t.client_head));
        line("connect_timeout", dur(t.connect));
        line("response_timeout", dur(t.response));
        line("client_idle_timeout", dur(t.client_idle));
        line("upstream_idle_timeout", dur(t.upstream_idle));
        line("drain_timeout", dur(t.drain));
        line("sniff_timeout", dur(t.sniff));
        line("tunnel_idle_timeout", dur(t.tunnel_idle));
        line("dns_ttl", dur(self.dns_ttl));
        line(
            "max_head_bytes",
            self.head_limits.max_head_bytes.to_string(),
        );
        line("max_headers", self.head_limits.max_headers.to_string());
        line("pool_max_per_host", self.pool_max_per_host.to_string());
        line("pool_max_idle", self.pool_max_idle.to_string());
        line(
            "max_connections",
            self.max_connections
                .map_or_else(|| quoted("(from the open-files limit)"), |n| n.to_string()),
        );
        line("pipe_size", self.pipe_size.to_string());
        line("no_splice", (!self.splice).to_string());
        line("ca_dir", quoted(&self.ca_dir.display().to_string()));
        line(
            "upstream_ca",
            list(self.upstream_ca.iter().map(|p| p.display())),
        );
        line("insecure_upstream", self.insecure_upstream.to_string());
        line(
            "auth",
            quoted(&match &self.auth {
                Some(creds) => format!("basic ({} credentials)", creds.len()),
                None => "off".to_owned(),
            }),
        );
        line(
            "dest_policy",
            format!(
                "{}  # {}",
                quoted(self.dest.kind.as_str()),
                self.dest_reason
            ),
        );
        line(
            "connect_ports",
            self.dest
                .connect_ports
                .as_ref()
                .map_or_else(|| quoted("any"), |ports| format!("{ports:?}")),
        );
        line("allow_dest", list(&self.dest.allow));
        line(
            "capture",
            quoted(&match &self.capture {
                Some(CaptureTarget::Stdout) => "-".to_owned(),
                Some(CaptureTarget::File(p)) => p.display().to_string(),
                None => "off".to_owned(),
            }),
        );
        line("capture_bodies", self.capture_bodies.to_string());
        line("capture_queue", self.capture_queue.to_string());
        line(
            "admin",
            self.admin
                .map_or_else(|| quoted("off"), |a| quoted(&a.to_string())),
        );
        line(
            "admin_token",
            quoted(if self.admin_token.is_some() {
                "(set)"
            } else {
                "(none)"
            }),
        );
        let rules = &self.rules;
        line(
            "rules",
            format!(
                "{}  # compiled: [[rule]] tables and --mitm globs{}",
                rules.len(),
                match rules.first_intercept_rule() {
                    Some(name) => format!("; intercepts (first: {name})"),
                    None => "; intercepts nothing".to_owned(),
                }
            ),
        );
        out
    }
}
