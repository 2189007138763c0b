//! The client's IP address: the TCP peer (axum's `ConnectInfo<SocketAddr>`), or — only
//! when that peer is one of the configured [`TrustedProxies`] — the address the proxy
//! forwarded in `Forwarded: for=` (RFC 7239) or `X-Forwarded-For`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use super::ConfigError;

/// Reverse proxies whose forwarding headers are believed: IP addresses and CIDR
/// ranges (`10.0.0.0/8`, `::1`, `fd00::/8`). Empty by default: forwarding headers
/// are then ignored and the client is the TCP peer.
///
/// ```
/// use authflow::http::TrustedProxies;
/// let proxies = TrustedProxies::parse(["10.0.0.0/8", "::1"])?;
/// assert!(proxies.contains("10.1.2.3".parse().unwrap()));
/// assert!(!proxies.contains("192.0.2.1".parse().unwrap()));
/// assert!(TrustedProxies::parse(["10.0.0.0/33"]).is_err());
/// # Ok::<(), authflow::http::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses addresses and CIDR ranges; the first invalid one is an error naming it.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, ConfigError> {
        let mut nets = Vec::new();
        for entry in entries {
            let entry = entry.trim();
            let bad = || ConfigError(format!("trusted proxy `{entry}`: expected an IP or CIDR"));
            let (addr, len) = match entry.split_once('/') {
                Some((a, l)) => (a, Some(l.parse::<u8>().map_err(|_| bad())?)),
                None => (entry, None),
            };
            let ip: IpAddr = addr.parse().map_err(|_| bad())?;
            let ip = ip.to_canonical();
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let len = len.unwrap_or(max);
            if len > max {
                return Err(bad());
            }
            nets.push((ip, len));
        }
        Ok(Self { nets })
    }

    /// Whether no proxy is trusted.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    /// Whether `ip` is one of the proxies (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|(net, len)| in_net(ip, *net, *len))
    }
}

fn in_net(ip: IpAddr, net: IpAddr, len: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The client's address for a request (see the module docs); `None` when the server
/// runs without `ConnectInfo` or a trusted proxy forwarded something unreadable.
pub(crate) fn client_ip(parts: &Parts, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical())?;
    resolve(peer, &parts.headers, proxies)
}

/// The rightmost forwarded hop that is not a trusted proxy, walking left from the
/// trusted `peer`. When every hop is trusted, the leftmost one; with no forwarding
/// header, the peer. An unreadable hop (`unknown`, an obfuscated name, garbage) ends
/// the walk with `None`: nothing to its left can be believed, and IP-based checks
/// fail closed on an unknown address.
fn resolve(peer: IpAddr, headers: &HeaderMap, proxies: &TrustedProxies) -> Option<IpAddr> {
    if !proxies.contains(peer) {
        return Some(peer);
    }
    let hops = forwarded_for(headers).unwrap_or_else(|| x_forwarded_for(headers));
    let mut client = peer;
    for hop in hops.iter().rev() {
        client = parse_hop(hop)?;
        if !proxies.contains(client) {
            return Some(client);
        }
    }
    Some(client)
}

/// The `for=` values of every `Forwarded` header, in order; `None` without the header
/// (then `X-Forwarded-For` is read).
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<String>> {
    let mut values = headers.get_all("forwarded").iter().peekable();
    values.peek()?;
    let mut hops = Vec::new();
    for value in values {
        let Ok(value) = value.to_str() else {
            hops.push(String::new());
            continue;
        };
        for element in value.split(',') {
            for pair in element.split(';') {
                if let Some((k, v)) = pair.trim().split_once('=') {
                    if k.trim().eq_ignore_ascii_case("for") {
                        hops.push(v.trim().to_owned());
                    }
                }
            }
        }
    }
    Some(hops)
}

fn x_forwarded_for(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .map(|s| s.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `"[2001:db8::1]:4711"`, `2001:db8::1`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim().trim_matches('"');
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = hop.parse::<SocketAddr>() {
        return Some(sa.ip().to_canonical());
    }
    hop.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .and_then(|h| h.parse::<IpAddr>().ok())
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_it_forwards() {
        let proxies = TrustedProxies::parse(["10.0.0.1"]).unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            resolve(ip("192.0.2.9"), &h, &proxies),
            Some(ip("192.0.2.9"))
        );
    }

    #[test]
    fn rightmost_untrusted_hop_wins() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        // The client forged "6.6.6.6"; the edge proxy appended the real peer 1.2.3.4.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), Some(ip("1.2.3.4")));
        let h = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:4711\";proto=https",
        )]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &h, &proxies),
            Some(ip("2001:db8::1"))
        );
        // Forwarded wins over X-Forwarded-For.
        let h = headers(&[
            ("forwarded", "for=1.2.3.4:80"),
            ("x-forwarded-for", "5.5.5.5"),
        ]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), Some(ip("1.2.3.4")));
    }

    #[test]
    fn unreadable_hops_and_all_trusted_chains() {
        let proxies = TrustedProxies::parse(["10.0.0.0/8"]).unwrap();
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), None);
        let h = headers(&[("x-forwarded-for", "10.0.0.3, 10.0.0.2")]);
        assert_eq!(resolve(ip("10.0.0.1"), &h, &proxies), Some(ip("10.0.0.3")));
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &proxies),
            Some(ip("10.0.0.1"))
        );
        let mapped = ip("::ffff:10.0.0.1");
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(resolve(mapped, &h, &proxies), Some(ip("1.2.3.4")));
    }

    #[test]
    fn cidr_parsing() {
        let p = TrustedProxies::parse(["0.0.0.0/0"]).unwrap();
        assert!(p.contains(ip("8.8.8.8")));
        assert!(!p.contains(ip("::1")));
        let p = TrustedProxies::parse(["fd00::/8"]).unwrap();
        assert!(p.contains(ip("fd12::1")));
        for bad in ["", "1.2.3", "1.2.3.4/", "::/129", "x/8"] {
            assert!(TrustedProxies::parse([bad]).is_err(), "{bad}");
        }
    }
}
