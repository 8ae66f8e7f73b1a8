//! Where the service may send a request whose destination a caller chose, such as a webhook:
//! never to the service's own machine, its private networks or a cloud's metadata endpoint,
//! which answer the service what they would never answer the outside world.
//!
//! A destination is checked when it is registered, every address its name resolves to, and
//! again at each connection, through [`PublicOnly`], a resolver that hands over public
//! addresses only: a name whose DNS answer changes after registration does not pass either.
//! A resolver is never asked about an IP literal, so [`check_host`] refuses those before a
//! request is made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// A destination refused. Its text is all that a delivery's log says: whether anything
/// listens there is never tried, so never told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("refused: private address")]
pub struct Refused;

/// Why a destination could not be accepted at registration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unacceptable {
    #[error("refused: private address")]
    Private,
    #[error("the host does not resolve: {0}")]
    Unresolved(String),
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Whether `address` is on the public internet: not loopback, private, link-local,
/// unique-local, shared (CGNAT), unspecified, broadcast, multicast, reserved or kept for
/// documentation, and no IPv6 form that carries such an IPv4 address (mapped, compatible,
/// NAT64, 6to4).
pub fn is_public(address: IpAddr) -> bool {
    match address {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(address: Ipv4Addr) -> bool {
    let [a, b, c, _] = address.octets();
    let refused = a == 0 // "this network", 0.0.0.0 among it
        || a == 10
        || a == 127
        || (a == 100 && (64..128).contains(&b)) // shared address space, CGNAT
        || (a == 169 && b == 254)
        || (a == 172 && (16..32).contains(&b))
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2) // documentation, as are the two below
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 192 && b == 168)
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 224; // multicast, reserved, broadcast
    !refused
}

fn is_public_v6(address: Ipv6Addr) -> bool {
    if let Some(v4) = embedded_v4(address) {
        return is_public_v4(v4);
    }
    let segments = address.segments();
    let first = segments[0];
    let refused = address.is_unspecified()
        || address.is_loopback()
        || (first & 0xfe00) == 0xfc00 // unique local, fc00::/7
        || (first & 0xffc0) == 0xfe80 // link-local, fe80::/10
        || (first & 0xffc0) == 0xfec0 // site-local, deprecated but still routed by some
        || (first & 0xff00) == 0xff00 // multicast
        || (first == 0x0064 && segments[1] == 0xff9b && segments[2] == 0x0001) // local NAT64
        || (first == 0x0100 && segments[1..4] == [0, 0, 0]) // discard-only
        || (first == 0x2001 && segments[1] == 0) // Teredo: an IPv4 address, obfuscated
        || (first == 0x2001 && segments[1] == 0x0db8) // documentation
        || segments[..5] == [0; 5]; // the rest of ::/80: nothing public lives there
    !refused
}

/// The IPv4 address an IPv6 one stands for, where it stands for one: IPv4-mapped
/// (`::ffff:a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), IPv4-compatible (`::a.b.c.d`,
/// but `::` and `::1`), NAT64 (`64:ff9b::a.b.c.d`) and 6to4 (`2002:ab:cd::`).
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    let segments = address.segments();
    let v4_of = |high: u16, low: u16| {
        let [a, b] = high.to_be_bytes();
        let [c, d] = low.to_be_bytes();
        Ipv4Addr::new(a, b, c, d)
    };
    match segments {
        [0, 0, 0, 0, 0, 0xffff, high, low] => Some(v4_of(high, low)),
        [0, 0, 0, 0, 0xffff, 0, high, low] => Some(v4_of(high, low)),
        [0, 0, 0, 0, 0, 0, high, low] if high != 0 => Some(v4_of(high, low)),
        [0x0064, 0xff9b, 0, 0, 0, 0, high, low] => Some(v4_of(high, low)),
        [0x2002, high, low, ..] => Some(v4_of(high, low)),
        _ => None,
    }
}

/// Names that lead to the local machine, a private network or a cloud's metadata service
/// whatever DNS answers: `localhost` and its subdomains, the private-use suffixes
/// (`.internal`, which holds `metadata.google.internal` and `instance-data.ec2.internal`,
/// `.local`, `.home.arpa`, `.lan`), `metadata.goog` and any name of one label (`metadata`,
/// `instance-data`), which a resolver completes with its own search domains.
pub fn is_private_name(host: &str) -> bool {
    const PRIVATE_SUFFIXES: [&str; 5] = [".localhost", ".internal", ".local", ".home.arpa", ".lan"];
    const METADATA_NAMES: [&str; 1] = ["metadata.goog"];
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    !name.contains('.')
        || PRIVATE_SUFFIXES.iter().any(|suffix| name.ends_with(suffix))
        || METADATA_NAMES.contains(&name.as_str())
}

/// What can be known of a URL's host without DNS: an IP literal is judged here (`Ok(None)`
/// when public), a name only for what it says (`Ok(Some(name))`, still to resolve).
pub fn check_host(url: &reqwest::Url) -> Result<Option<String>, Refused> {
    let Some(host) = url.host_str() else {
        return Err(Refused);
    };
    // The URL parser has already turned every IPv4 spelling (`2130706433`, `0x7f.1`) into a
    // dotted quad and wraps IPv6 in brackets: what parses as an address is one.
    let bare = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(address) = bare.parse::<IpAddr>() {
        return if is_public(address) {
            Ok(None)
        } else {
            Err(Refused)
        };
    }
    if is_private_name(host) {
        return Err(Refused);
    }
    Ok(Some(host.to_owned()))
}

/// Checks a destination at registration: its host, then every address its name resolves to
/// within `timeout`. One private address among them refuses it, since a connection may take
/// any of them.
pub async fn check_destination(url: &reqwest::Url, timeout: Duration) -> Result<(), Unacceptable> {
    let Some(name) = check_host(url).map_err(|Refused| Unacceptable::Private)? else {
        return Ok(());
    };
    let port = url.port_or_known_default().unwrap_or(443);
    let resolved = tokio::time::timeout(timeout, tokio::net::lookup_host((name.as_str(), port)))
        .await
        .map_err(|_| Unacceptable::Unresolved("no answer in time".into()))?
        .map_err(|error| Unacceptable::Unresolved(error.to_string()))?;
    let addresses: Vec<SocketAddr> = resolved.collect();
    if addresses.is_empty() {
        return Err(Unacceptable::Unresolved("no address".into()));
    }
    if addresses.iter().any(|address| !is_public(address.ip())) {
        return Err(Unacceptable::Private);
    }
    Ok(())
}

/// Whether a request failed on a refused destination, however deep in its chain of sources.
pub fn is_refusal(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.downcast_ref::<Refused>().is_some() {
            return true;
        }
        current = error.source();
    }
    false
}

/// The resolver of a client whose destinations callers choose: the system's answer with the
/// addresses that are not public left out, refused when none is left or the name is private.
#[derive(Debug, Clone, Copy, Default)]
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(public_addresses(name.as_str().to_owned()))
    }
}

async fn public_addresses(host: String) -> Result<reqwest::dns::Addrs, BoxError> {
    if is_private_name(&host) {
        return Err(Refused.into());
    }
    // Port 0: the client puts the URL's port in.
    let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
    let addresses: reqwest::dns::Addrs = Box::new(keep_public(resolved)?.into_iter());
    Ok(addresses)
}

/// The public addresses among `resolved`; refused when there are none.
fn keep_public(resolved: impl Iterator<Item = SocketAddr>) -> Result<Vec<SocketAddr>, Refused> {
    let public: Vec<SocketAddr> = resolved.filter(|address| is_public(address.ip())).collect();
    if public.is_empty() {
        return Err(Refused);
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &[&str] = &[
        "127.0.0.1",
        "127.8.9.10",
        "0.0.0.0",
        "0.1.2.3",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "100.100.100.200",
        "100.127.255.254",
        "192.0.0.170",
        "198.18.0.1",
        "192.0.2.1",
        "224.0.0.1",
        "239.255.255.250",
        "240.0.0.1",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::127.0.0.1",
        "::169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b:1::1",
        "2002:7f00:1::",
        "2002:a9fe:a9fe::1",
        "2001::1",
        "2001:db8::1",
        "100::1",
        "::ffff:0:a9fe:a9fe",
    ];

    const PUBLIC: &[&str] = &[
        "8.8.8.8",
        "1.1.1.1",
        "93.184.215.14",
        "100.63.255.255",
        "100.128.0.1",
        "172.15.255.255",
        "172.32.0.1",
        "169.253.0.1",
        "223.255.255.254",
        "2606:4700::1111",
        "2001:4860:4860::8888",
        "2a00:1450:4007:80e::200e",
        "::ffff:8.8.8.8",
        "64:ff9b::808:808",
        "2002:808:808::1",
    ];

    #[test]
    fn every_private_address_is_refused_and_public_ones_pass() {
        for text in REFUSED {
            let address: IpAddr = text.parse().unwrap();
            assert!(!is_public(address), "{text} passed");
        }
        for text in PUBLIC {
            let address: IpAddr = text.parse().unwrap();
            assert!(is_public(address), "{text} refused");
        }
    }

    #[test]
    fn urls_are_judged_on_their_parsed_host() {
        let refused = [
            "http://169.254.169.254/latest/meta-data/",
            "http://[::1]:8201/",
            "http://10.0.0.1/",
            "http://localhost/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://0.0.0.0/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://017700000001/",
            "http://[::ffff:169.254.169.254]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://metadata.google.internal./",
            "http://metadata/",
            "http://instance-data/latest/",
            "http://instance-data.ec2.internal/",
            "http://printer.local/",
        ];
        for text in refused {
            let url = reqwest::Url::parse(text).unwrap();
            assert_eq!(check_host(&url), Err(Refused), "{text}");
        }
        let url = reqwest::Url::parse("https://tms.example.com/etape").unwrap();
        assert_eq!(check_host(&url), Ok(Some("tms.example.com".to_owned())));
        let url = reqwest::Url::parse("http://8.8.8.8:8080/").unwrap();
        assert_eq!(check_host(&url), Ok(None));
        let url = reqwest::Url::parse("http://[2606:4700::1111]/").unwrap();
        assert_eq!(check_host(&url), Ok(None));
    }

    #[tokio::test]
    async fn registration_refuses_without_asking_dns_what_the_url_already_says() {
        for text in [
            "http://127.0.0.1:9/",
            "http://localhost:8201/",
            "http://metadata/",
        ] {
            let url = reqwest::Url::parse(text).unwrap();
            assert_eq!(
                check_destination(&url, Duration::from_secs(1)).await,
                Err(Unacceptable::Private),
                "{text}"
            );
        }
        let url = reqwest::Url::parse("https://8.8.8.8/").unwrap();
        assert_eq!(
            check_destination(&url, Duration::from_secs(1)).await,
            Ok(())
        );
    }

    #[tokio::test]
    async fn the_resolver_hands_over_no_private_address() {
        use reqwest::dns::Resolve;
        // Literals and private names resolve without the network.
        for name in [
            "127.0.0.1",
            "10.1.2.3",
            "::1",
            "localhost",
            "metadata.google.internal",
        ] {
            let error = match PublicOnly.resolve(name.parse().unwrap()).await {
                Ok(addresses) => panic!("{name}: {:?}", addresses.collect::<Vec<_>>()),
                Err(error) => error,
            };
            assert!(is_refusal(&*error), "{name}: {error}");
            assert_eq!(error.to_string(), "refused: private address");
        }
        let addresses: Vec<SocketAddr> = PublicOnly
            .resolve("8.8.8.8".parse().unwrap())
            .await
            .unwrap()
            .collect();
        assert_eq!(addresses, [SocketAddr::from(([8, 8, 8, 8], 0))]);
    }

    #[test]
    fn an_answer_keeps_its_public_addresses_only() {
        let address = |text: &str| SocketAddr::new(text.parse().unwrap(), 0);
        let mixed = [address("10.0.0.7"), address("8.8.8.8"), address("::1")];
        assert_eq!(keep_public(mixed.into_iter()), Ok(vec![address("8.8.8.8")]));
        let private = [address("169.254.169.254"), address("fd00::1")];
        assert_eq!(keep_public(private.into_iter()), Err(Refused));
        assert_eq!(keep_public(std::iter::empty()), Err(Refused));
    }

    #[tokio::test]
    async fn a_client_on_this_resolver_fails_with_a_refusal_and_connects_nowhere() {
        crate::adapters::webhooks::install_tls_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .dns_resolver(std::sync::Arc::new(PublicOnly))
            .build()
            .unwrap();
        let error = client
            .post("http://metadata.google.internal:9/")
            .send()
            .await
            .unwrap_err();
        assert!(is_refusal(&error), "{error:?}");
    }

    #[test]
    fn a_refusal_is_found_under_the_errors_that_wrap_it() {
        #[derive(Debug)]
        struct Wrapper(BoxError);
        impl std::fmt::Display for Wrapper {
            fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("error sending request")
            }
        }
        impl std::error::Error for Wrapper {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&*self.0)
            }
        }
        let wrapped = Wrapper(Box::new(Wrapper(Box::new(Refused))));
        assert!(is_refusal(&wrapped));
        let other = Wrapper(Box::new(std::io::Error::other("connection refused")));
        assert!(!is_refusal(&other));
    }
}
