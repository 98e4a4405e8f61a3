//! Destination policy: which addresses and CONNECT ports a request may reach. `open` allows
//! everything (the default when every listener is on loopback: a personal debugging proxy);
//! `public` (the default otherwise) refuses loopback, private (RFC 1918, CGNAT 100.64/10, IPv6
//! ULA), link-local (including the 169.254.169.254 cloud metadata service), unspecified,
//! multicast and broadcast addresses — IPv4-mapped and IPv4-compatible IPv6 forms classified by
//! the IPv4 address inside — and CONNECT to ports outside `connect_ports` (default 443 under
//! `public`). `allow_dest` CIDRs re-allow ranges. Checked on the resolved addresses, after DNS,
//! so a name cannot smuggle a private address past it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Deserialize;

/// CONNECT ports allowed under `public` unless `connect_ports` says otherwise.
pub const DEFAULT_PUBLIC_CONNECT_PORTS: &[u16] = &[443];

/// `--dest-policy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DestKind {
    /// Any destination, any CONNECT port.
    Open,
    /// Public unicast addresses only; CONNECT to `connect_ports` only.
    Public,
}

impl DestKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DestKind::Open => "open",
            DestKind::Public => "public",
        }
    }
}

/// An address range (`10.0.0.0/8`, `fd00::/8`, or one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

impl Cidr {
    /// Parses `ADDR/PREFIX` or a bare address.
    pub fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("{text:?} is not an address or CIDR range"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{text:?}: prefix must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { net, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(n), IpAddr::V4(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (full, rest) = ((bits / 8) as usize, bits % 8);
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// An IPv4-mapped (`::ffff:a.b.c.d`) or IPv4-compatible (`::a.b.c.d`) address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => match v6.segments() {
                // ::a.b.c.d (deprecated IPv4-compatible), but not :: or ::1 themselves.
                [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => {
                    IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
                }
                _ => ip,
            },
        },
        v4 => v4,
    }
}

/// The class of a non-public address, or `None` for a public unicast one.
pub fn non_public_class(ip: IpAddr) -> Option<&'static str> {
    match canonical(ip) {
        IpAddr::V4(a) => v4_class(a),
        IpAddr::V6(a) => v6_class(a),
    }
}

fn v4_class(a: Ipv4Addr) -> Option<&'static str> {
    let [o0, o1, ..] = a.octets();
    Some(if a.is_loopback() {
        "loopback"
    } else if a.is_private() || (o0 == 100 && (64..128).contains(&o1)) {
        "private"
    } else if a.is_link_local() {
        "link-local"
    } else if o0 == 0 {
        "unspecified"
    } else if a.is_multicast() {
        "multicast"
    } else if a.is_broadcast() || o0 >= 240 {
        "reserved"
    } else {
        return None;
    })
}

fn v6_class(a: Ipv6Addr) -> Option<&'static str> {
    let s0 = a.segments()[0];
    Some(if a.is_loopback() {
        "loopback"
    } else if a.is_unspecified() {
        "unspecified"
    } else if s0 & 0xfe00 == 0xfc00 {
        "private"
    } else if s0 & 0xffc0 == 0xfe80 {
        "link-local"
    } else if a.is_multicast() {
        "multicast"
    } else {
        return None;
    })
}

/// Where requests may go.
#[derive(Debug, Clone)]
pub struct DestPolicy {
    pub kind: DestKind,
    /// CONNECT ports allowed (`None`: any).
    pub connect_ports: Option<Vec<u16>>,
    /// Ranges allowed even under `public`.
    pub allow: Vec<Cidr>,
}

impl DestPolicy {
    /// Any destination, any port.
    pub fn open() -> DestPolicy {
        DestPolicy {
            kind: DestKind::Open,
            connect_ports: None,
            allow: Vec::new(),
        }
    }

    /// Whether `ip` may be dialed; `Err` names the address class refused.
    pub fn check_addr(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.kind == DestKind::Open || self.allow.iter().any(|c| c.contains(ip)) {
            return Ok(());
        }
        match non_public_class(ip) {
            Some(class) => Err(class),
            None => Ok(()),
        }
    }

    /// Whether a CONNECT to `port` is allowed.
    pub fn connect_port_allowed(&self, port: u16) -> bool {
        self.connect_ports
            .as_ref()
            .is_none_or(|p| p.contains(&port))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(allow: &[&str]) -> DestPolicy {
        DestPolicy {
            kind: DestKind::Public,
            connect_ports: Some(DEFAULT_PUBLIC_CONNECT_PORTS.to_vec()),
            allow: allow
                .iter()
                .map(|c| Cidr::parse(c).expect("cidr"))
                .collect(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn public_refuses_every_non_public_class() {
        let p = public(&[]);
        for (addr, class) in [
            ("127.0.0.1", "loopback"),
            ("127.255.0.9", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("172.31.255.255", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "private"),
            ("169.254.169.254", "link-local"),
            ("0.0.0.0", "unspecified"),
            ("224.0.0.1", "multicast"),
            ("255.255.255.255", "reserved"),
            ("::1", "loopback"),
            ("::", "unspecified"),
            ("fd12:3456::1", "private"),
            ("fc00::1", "private"),
            ("fe80::1", "link-local"),
            ("ff02::1", "multicast"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("::ffff:169.254.169.254", "link-local"),
            ("::127.0.0.1", "loopback"),
        ] {
            assert_eq!(p.check_addr(ip(addr)), Err(class), "{addr}");
        }
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(p.check_addr(ip(addr)), Ok(()), "{addr}");
        }
    }

    #[test]
    fn allow_dest_and_open() {
        let p = public(&["10.0.0.0/8", "fd00::/8", "127.0.0.1"]);
        assert_eq!(p.check_addr(ip("10.9.9.9")), Ok(()));
        assert_eq!(p.check_addr(ip("::ffff:10.9.9.9")), Ok(()));
        assert_eq!(p.check_addr(ip("fd01::1")), Ok(()));
        assert_eq!(p.check_addr(ip("127.0.0.1")), Ok(()));
        assert_eq!(p.check_addr(ip("127.0.0.2")), Err("loopback"));
        assert_eq!(p.check_addr(ip("192.168.0.1")), Err("private"));
        assert!(p.connect_port_allowed(443) && !p.connect_port_allowed(22));
        let open = DestPolicy::open();
        assert_eq!(open.check_addr(ip("127.0.0.1")), Ok(()));
        assert!(open.connect_port_allowed(22));
    }

    #[test]
    fn cidr_parsing() {
        assert!(Cidr::parse("10.0.0.0/8").is_ok());
        assert!(Cidr::parse("[::1]").is_ok());
        assert!(Cidr::parse("10.0.0.0/33").is_err());
        assert!(Cidr::parse("fd00::/129").is_err());
        assert!(Cidr::parse("example.com").is_err());
        let c = Cidr::parse("192.168.0.0/23").expect("cidr");
        assert!(c.contains(ip("192.168.1.255")) && !c.contains(ip("192.168.2.0")));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .expect("all")
                .contains(ip("8.8.8.8"))
        );
    }
}
