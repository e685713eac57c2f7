//! Which registries and network addresses imports may contact: pure decisions, no IO.
//!
//! Three independent guards, all checked before a request leaves the process:
//!
//! * [`AllowedRegistries`]: OpenShift's `allowedRegistriesForImport` whitelist (semantics
//!   5.10), with upstream's default ports, `docker.io` aliases and error text.
//! * [`BlockedRegistries`]: operator-configured `host[:port]` globs that are never contacted
//!   (`registrySources.blockedRegistries` plus anything the operator adds).
//! * [`is_blocked_ip`]: addresses no registry may resolve to or redirect to (link-local, cloud
//!   metadata, unspecified), the server-side request forgery guard used by the resolver and
//!   for literal-IP hosts.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::RegistryLocation;
use crate::reference::{
    DOCKER_DEFAULT_REGISTRY, DOCKER_DEFAULT_V1_REGISTRY, DOCKER_DEFAULT_V2_REGISTRY,
};

/// Whether a registry is reached over TLS, which decides the port assumed when none is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// HTTPS: a missing port means 443.
    Secure,
    /// Insecure import: a missing port means 80.
    Insecure,
    /// Either: a registry without a port matches entries on 80, 443 or `*`.
    Any,
}

/// One allowed `host:port` pair of globs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct HostPortGlob {
    host: String,
    port: String,
}

/// The import whitelist (`allowedRegistriesForImport`), in upstream's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowedRegistries {
    entries: Vec<HostPortGlob>,
}

/// A whitelist entry that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("failed to parse allowed registry {0:?}: too many colons")]
pub struct InvalidAllowedRegistry(pub String);

/// A registry the whitelist does not admit; `Display` is upstream's message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct NotAllowed {
    /// The registry as it was checked (`host` or `host:port`).
    pub registry: String,
    /// The whitelist as `"host:port"` strings, in order.
    pub whitelist: Vec<String>,
}

/// How many whitelist entries upstream's message lists before "and N more ...".
const SHOW_MAX: usize = 5;

impl fmt::Display for NotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.whitelist.is_empty() {
            return write!(
                f,
                "registry {:?} not allowed by empty whitelist",
                self.registry
            );
        }
        let quoted: Vec<String> = self.whitelist.iter().map(|e| format!("{e:?}")).collect();
        write!(f, "registry {:?} not allowed by whitelist: ", self.registry)?;
        if quoted.len() <= SHOW_MAX {
            write!(f, "{}", quoted.join(", "))
        } else {
            write!(
                f,
                "{}, and {} more ...",
                quoted[..SHOW_MAX - 1].join(", "),
                quoted.len() - SHOW_MAX + 1
            )
        }
    }
}

impl NotAllowed {
    /// The message of the ImageStreamImport validation error (semantics 10.2 case 43):
    /// `importing images from registry "<h:p>" is forbidden: <self>`.
    pub fn import_forbidden_message(&self) -> String {
        format!(
            "importing images from registry {:?} is forbidden: {self}",
            self.registry
        )
    }
}

impl AllowedRegistries {
    /// The whitelist from `allowedRegistriesForImport` entries, keeping their order.
    /// `internal_registry` (the cluster's integrated registry hostname) is always allowed.
    pub fn new(
        locations: &[RegistryLocation],
        internal_registry: Option<&str>,
    ) -> Result<Self, InvalidAllowedRegistry> {
        let mut allowed = AllowedRegistries::default();
        // entries are prepended, so walk backwards to keep the configured order
        for location in locations.iter().rev() {
            let transport = if location.insecure.unwrap_or(false) {
                Transport::Insecure
            } else {
                Transport::Secure
            };
            allowed.allow(&location.domain_name, transport)?;
        }
        if let Some(internal) = internal_registry.filter(|h| !h.is_empty()) {
            allowed.allow(internal, Transport::Secure)?;
        }
        Ok(allowed)
    }

    /// Adds `host` or `host:port` (globs allowed) in front of the list. Without a port the
    /// transport decides: 443 (secure), 80 (insecure) or both (any). Exact duplicates are
    /// skipped.
    pub fn allow(
        &mut self,
        host_port_glob: &str,
        transport: Transport,
    ) -> Result<(), InvalidAllowedRegistry> {
        let parts: Vec<&str> = host_port_glob.splitn(3, ':').collect();
        let new: Vec<HostPortGlob> = match parts.as_slice() {
            [host] => {
                let glob = |port: &str| HostPortGlob {
                    host: (*host).to_string(),
                    port: port.to_string(),
                };
                match transport {
                    Transport::Secure => vec![glob("443")],
                    Transport::Insecure => vec![glob("80")],
                    Transport::Any => vec![glob("80"), glob("443")],
                }
            }
            [host, port] => vec![HostPortGlob {
                host: (*host).to_string(),
                port: (*port).to_string(),
            }],
            _ => return Err(InvalidAllowedRegistry(host_port_glob.to_string())),
        };
        for entry in new {
            if !self.entries.contains(&entry) {
                self.entries.insert(0, entry);
            }
        }
        Ok(())
    }

    /// The entries as `host:port` strings, in order.
    pub fn entries(&self) -> Vec<String> {
        self.entries
            .iter()
            .map(|e| join_host_port(&e.host, &e.port))
            .collect()
    }

    /// Whether imports from `registry` (`host`, `host:port`, or empty for Docker Hub) are
    /// allowed. Without a port, `Secure` checks port 443, `Insecure` port 80, and `Any`
    /// accepts an entry on 80, 443 or `*`. `index.docker.io` and `registry-1.docker.io` also
    /// match entries for `docker.io`.
    pub fn admit(&self, registry: &str, transport: Transport) -> Result<(), NotAllowed> {
        let (host, port) = match transport {
            Transport::Any => {
                let (host, port) = split_host_port(registry);
                let host = if host.is_empty() {
                    DOCKER_DEFAULT_V2_REGISTRY
                } else {
                    host
                };
                (host.to_string(), port.unwrap_or("").to_string())
            }
            Transport::Secure => registry_host_port(registry, false),
            Transport::Insecure => registry_host_port(registry, true),
        };
        let matches = |h: &str| {
            self.entries.iter().any(|e| {
                if !wildcard_match(h, &e.host) {
                    return false;
                }
                if port.is_empty() {
                    return matches!(e.port.as_str(), "80" | "443" | "*");
                }
                wildcard_match(&port, &e.port)
            })
        };
        let docker_hub = host == DOCKER_DEFAULT_V1_REGISTRY || host == DOCKER_DEFAULT_V2_REGISTRY;
        if (docker_hub && matches(DOCKER_DEFAULT_REGISTRY)) || matches(&host) {
            return Ok(());
        }
        let shown = if !registry.is_empty() {
            registry.to_string()
        } else if !port.is_empty() {
            join_host_port(&host, &port)
        } else {
            host
        };
        Err(NotAllowed {
            registry: shown,
            whitelist: self.entries(),
        })
    }
}

/// Upstream's `RegistryHostPort`: Docker Hub defaulting (`docker.io` → `registry-1.docker.io`
/// for the v2 API), then the port (given, or 443 / 80 for insecure).
fn registry_host_port(registry: &str, insecure: bool) -> (String, String) {
    let registry = match registry {
        "" | DOCKER_DEFAULT_REGISTRY | DOCKER_DEFAULT_V1_REGISTRY => DOCKER_DEFAULT_V2_REGISTRY,
        other => other,
    };
    let (host, port) = split_host_port(registry);
    let default_port = if insecure { "80" } else { "443" };
    match port {
        Some(p) if !p.is_empty() => (host.to_string(), p.to_string()),
        _ => (registry.to_string(), default_port.to_string()),
    }
}

/// `host:port` → (`host`, Some(`port`)); `[v6]:port` and bare hosts too.
pub(crate) fn split_host_port(s: &str) -> (&str, Option<&str>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            return (host, after.strip_prefix(':'));
        }
        return (s, None);
    }
    match s.rsplit_once(':') {
        // a bare IPv6 address has several colons and no port
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (s, None),
    }
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Glob match with `*` (any run of characters, also empty) and `?` (one character), over the
/// whole string, case-sensitive.
pub fn wildcard_match(text: &str, pattern: &str) -> bool {
    let t: Vec<char> = text.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    let (mut ti, mut pi) = (0, 0);
    // position of the last `*` in the pattern and the text index it was tried at
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// Registries the operator never contacts: `host` or `host:port` globs. A pattern without a
/// port matches the host on any port.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BlockedRegistries {
    patterns: Vec<String>,
}

impl BlockedRegistries {
    pub fn new<I, S>(patterns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        BlockedRegistries {
            patterns: patterns.into_iter().map(Into::into).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The first pattern that blocks `registry` (`host` or `host:port`), if any.
    pub fn blocking(&self, registry: &str) -> Option<&str> {
        let (host, port) = split_host_port(registry);
        let host = host.to_ascii_lowercase();
        self.patterns
            .iter()
            .find(|pattern| {
                let (p_host, p_port) = split_host_port(pattern);
                if !wildcard_match(&host, &p_host.to_ascii_lowercase()) {
                    return false;
                }
                match (p_port, port) {
                    (None, _) => true,
                    (Some(pp), Some(port)) => wildcard_match(port, pp),
                    // pattern names a port, registry has none: compare with the defaults
                    (Some(pp), None) => wildcard_match("443", pp) || wildcard_match("80", pp),
                }
            })
            .map(String::as_str)
    }
}

/// Why an address may not be contacted, or `None` when it may.
pub fn blocked_ip_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => blocked_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return blocked_v4(v4);
            }
            blocked_v6(v6)
        }
    }
}

/// Whether `ip` is a link-local, cloud metadata or unspecified address.
pub fn is_blocked_ip(ip: IpAddr) -> bool {
    blocked_ip_reason(ip).is_some()
}

const ALIBABA_METADATA: Ipv4Addr = Ipv4Addr::new(100, 100, 100, 200);
const AWS_METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254);

fn blocked_v4(ip: Ipv4Addr) -> Option<&'static str> {
    if ip == Ipv4Addr::new(169, 254, 169, 254) || ip == ALIBABA_METADATA {
        Some("a cloud metadata address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.octets()[0] == 0 {
        // 0.0.0.0/8: the unspecified address, and "this network" (reaches the local host)
        Some("an unspecified address")
    } else {
        None
    }
}

fn blocked_v6(ip: Ipv6Addr) -> Option<&'static str> {
    if ip == AWS_METADATA_V6 {
        Some("a cloud metadata address")
    } else if ip.segments()[0] & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(domain: &str, insecure: bool) -> RegistryLocation {
        RegistryLocation {
            domain_name: domain.into(),
            insecure: insecure.then_some(true),
        }
    }

    fn allowed(entries: &[(&str, bool)]) -> AllowedRegistries {
        let locations: Vec<_> = entries.iter().map(|(d, i)| loc(d, *i)).collect();
        AllowedRegistries::new(&locations, None).unwrap()
    }

    /// Semantics 10.2 case 32 (TestValidateImageStreamWithWhitelister).
    #[test]
    fn case_32_unlisted_registry_names_every_entry_with_its_port() {
        let w = allowed(&[
            ("example.com", false),
            ("localhost:5000", false),
            ("dev.null.io:80", false),
        ]);
        let err = w.admit("registry.ltd", Transport::Secure).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"registry "registry.ltd" not allowed by whitelist: "example.com:443", "localhost:5000", "dev.null.io:80""#
        );
        assert!(w.admit("example.com", Transport::Secure).is_ok());
        assert!(w.admit("example.com:443", Transport::Secure).is_ok());
        assert!(w.admit("localhost:5000", Transport::Secure).is_ok());
        assert!(w.admit("dev.null.io:80", Transport::Secure).is_ok());
        // an insecure reference without a port is checked on port 80
        assert!(w.admit("example.com", Transport::Insecure).is_err());
        assert!(w.admit("dev.null.io", Transport::Insecure).is_ok());
        // "any": a registry without port matches entries on 80 or 443
        assert!(w.admit("example.com", Transport::Any).is_ok());
        assert!(w.admit("dev.null.io", Transport::Any).is_ok());
        assert!(w.admit("localhost", Transport::Any).is_err());
    }

    /// Semantics 10.2 case 33: a wildcard does not match the apex domain.
    #[test]
    fn case_33_wildcard_does_not_match_the_apex() {
        let w = allowed(&[("*.example.com", false)]);
        let err = w.admit("example.com", Transport::Secure).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"registry "example.com" not allowed by whitelist: "*.example.com:443""#
        );
        assert!(w.admit("registry.example.com", Transport::Secure).is_ok());
        assert!(w.admit("a.b.example.com:443", Transport::Secure).is_ok());
        assert!(
            w.admit("registry.example.com:5000", Transport::Secure)
                .is_err()
        );
    }

    /// Semantics 10.2 case 34: `docker.io` only; other registries are named in the error,
    /// Docker Hub's aliases and the empty (defaulted) registry are admitted.
    #[test]
    fn case_34_docker_io_only() {
        let w = allowed(&[("docker.io", false)]);
        let err = w.admit("example.com", Transport::Secure).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"registry "example.com" not allowed by whitelist: "docker.io:443""#
        );
        for hub in ["", "docker.io", "index.docker.io", "registry-1.docker.io"] {
            assert!(w.admit(hub, Transport::Secure).is_ok(), "{hub:?}");
        }
        assert!(w.admit("docker.io:5000", Transport::Secure).is_err());
    }

    /// Semantics 10.2 case 43 (TestValidateRegistryAllowedForImport).
    #[test]
    fn case_43_import_forbidden_message() {
        let w = allowed(&[("foo.bar", false)]);
        let err = w.admit("example.com:443", Transport::Secure).unwrap_err();
        assert_eq!(
            err.import_forbidden_message(),
            r#"importing images from registry "example.com:443" is forbidden: registry "example.com:443" not allowed by whitelist: "foo.bar:443""#
        );
    }

    #[test]
    fn long_and_empty_whitelists_are_abbreviated_like_upstream() {
        let w = allowed(&[
            ("a.io", false),
            ("b.io", false),
            ("c.io", false),
            ("d.io", false),
            ("e.io", false),
            ("f.io", true),
            ("g.io:*", false),
        ]);
        assert_eq!(
            w.admit("x.io", Transport::Secure).unwrap_err().to_string(),
            r#"registry "x.io" not allowed by whitelist: "a.io:443", "b.io:443", "c.io:443", "d.io:443", and 3 more ..."#
        );
        assert!(w.admit("g.io:1234", Transport::Secure).is_ok());
        assert!(w.admit("f.io", Transport::Insecure).is_ok());
        assert!(w.admit("f.io", Transport::Secure).is_err());
        let empty = AllowedRegistries::default();
        assert_eq!(
            empty
                .admit("localhost:5000", Transport::Secure)
                .unwrap_err()
                .to_string(),
            r#"registry "localhost:5000" not allowed by empty whitelist"#
        );
    }

    #[test]
    fn internal_registry_is_always_allowed_and_duplicates_collapse() {
        let locations = vec![loc("quay.io", false), loc("quay.io", false)];
        let w = AllowedRegistries::new(&locations, Some("image-registry.svc:5000")).unwrap();
        assert_eq!(w.entries(), ["image-registry.svc:5000", "quay.io:443"]);
        assert!(
            w.admit("image-registry.svc:5000", Transport::Secure)
                .is_ok()
        );
        let bad = AllowedRegistries::new(&[loc("a:1:2", false)], None).unwrap_err();
        assert_eq!(
            bad.to_string(),
            r#"failed to parse allowed registry "a:1:2": too many colons"#
        );
    }

    #[test]
    fn globs() {
        assert!(wildcard_match("abc", "abc"));
        assert!(wildcard_match("abc", "a*"));
        assert!(wildcard_match("abc", "*c"));
        assert!(wildcard_match("abc", "a?c"));
        assert!(wildcard_match("", "*"));
        assert!(wildcard_match("a.b.c", "*.c"));
        assert!(wildcard_match("aXbXc", "a*b*c"));
        assert!(!wildcard_match("abc", "a?"));
        assert!(!wildcard_match("abc", "abcd"));
        assert!(!wildcard_match("ab", "a*bc"));
        assert!(!wildcard_match("Abc", "abc"));
    }

    #[test]
    fn blocked_registries_match_hosts_and_ports() {
        let b = BlockedRegistries::new(["*.internal", "evil.io:5000", "10.0.0.?"]);
        assert_eq!(b.blocking("reg.internal"), Some("*.internal"));
        assert_eq!(b.blocking("REG.internal:443"), Some("*.internal"));
        assert_eq!(b.blocking("evil.io:5000"), Some("evil.io:5000"));
        assert_eq!(b.blocking("evil.io:5001"), None);
        assert_eq!(b.blocking("evil.io"), None);
        assert_eq!(b.blocking("10.0.0.7:5000"), Some("10.0.0.?"));
        assert_eq!(b.blocking("quay.io"), None);
        assert!(BlockedRegistries::default().blocking("x").is_none());
    }

    #[test]
    fn blocked_addresses() {
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "100.100.100.200",
            "0.0.0.0",
            "0.1.2.3",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "::",
            "::ffff:169.254.169.254",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(is_blocked_ip(ip), "{ip} must be blocked");
        }
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.1.1",
            "100.100.100.201",
            "8.8.8.8",
            "::1",
            "fec0::1",
            "fd00:ec2::253",
            "2001:db8::1",
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(!is_blocked_ip(ip), "{ip} must be allowed");
        }
        assert_eq!(
            blocked_ip_reason("169.254.169.254".parse().unwrap()),
            Some("a cloud metadata address")
        );
    }

    #[test]
    fn host_port_splitting() {
        assert_eq!(split_host_port("a.io"), ("a.io", None));
        assert_eq!(split_host_port("a.io:5000"), ("a.io", Some("5000")));
        assert_eq!(split_host_port("[::1]:5000"), ("::1", Some("5000")));
        assert_eq!(split_host_port("[::1]"), ("::1", None));
        assert_eq!(split_host_port("::1"), ("::1", None));
    }
}
