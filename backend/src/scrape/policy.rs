//! Which addresses scrapes may reach: a target form is an SSRF door, so cloud metadata
//! services are refused by default, and operators widen or narrow the list with
//! `--scrape-deny-cidr` / `--scrape-allow-cidr`.
//!
//! An address is checked in every form it can take on the wire: as written, and the IPv4
//! address embedded in an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
//! NAT64 (`64:ff9b::/96`, `64:ff9b:1::/48`) or 6to4 (`2002::/16`) IPv6 address; the
//! unspecified addresses (`0.0.0.0`, `::`) also count as loopback, since connecting to them
//! reaches the local host. Each form takes the verdict of the most specific rule containing
//! it (at equal prefix lengths an allow wins); the address is refused if any form is denied.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use ipnet::IpNet;

/// The built-in deny list: link-local ranges (AWS, GCP, Azure, … metadata at
/// 169.254.169.254), AWS' IPv6 metadata endpoint and Alibaba Cloud's.
pub const DEFAULT_DENY: [&str; 4] = [
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// The ranges `--allow-link-local-targets` allows.
pub const LINK_LOCAL: [&str; 2] = ["169.254.0.0/16", "fe80::/10"];

/// Where a rule comes from, to say in a refusal how to lift it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Origin {
    Default,
    Flag,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Rule {
    net: IpNet,
    allow: bool,
    origin: Origin,
}

/// The deny and allow lists scrapes are checked against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AddressPolicy {
    rules: Vec<Rule>,
}

impl Default for AddressPolicy {
    /// The built-in deny list, nothing allowed on top.
    fn default() -> Self {
        AddressPolicy::new(&[], &[])
    }
}

/// Why an address is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{ip} is in {net}, which scrapes refuse{why}; {fix}")]
pub struct Denied {
    /// The address as resolved.
    pub ip: IpAddr,
    /// The deny rule that matched.
    pub net: IpNet,
    why: &'static str,
    fix: String,
}

impl AddressPolicy {
    /// The built-in deny list plus `deny`, with `allow` carved out of it.
    pub fn new(deny: &[IpNet], allow: &[IpNet]) -> Self {
        let defaults = DEFAULT_DENY.iter().map(|n| Rule {
            net: n.parse().expect("a valid built-in CIDR"),
            allow: false,
            origin: Origin::Default,
        });
        let flagged = |nets: &[IpNet], allow: bool| {
            nets.iter()
                .map(move |net| Rule {
                    net: net.trunc(),
                    allow,
                    origin: Origin::Flag,
                })
                .collect::<Vec<_>>()
        };
        let mut rules: Vec<Rule> = defaults.collect();
        rules.extend(flagged(deny, false));
        rules.extend(flagged(allow, true));
        AddressPolicy { rules }
    }

    /// [`AddressPolicy::new`] with `--allow-link-local-targets` folded in.
    pub fn from_flags(deny: &[IpNet], allow: &[IpNet], allow_link_local: bool) -> Self {
        let mut allow = allow.to_vec();
        if allow_link_local {
            allow.extend(
                LINK_LOCAL
                    .iter()
                    .map(|n| n.parse::<IpNet>().expect("valid")),
            );
        }
        AddressPolicy::new(deny, &allow)
    }

    /// `Ok` if scrapes may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        for form in forms(ip) {
            if let Some(rule) = self.verdict(form).filter(|r| !r.allow) {
                return Err(self.denied(ip, rule));
            }
        }
        Ok(())
    }

    /// The most specific rule containing `ip`; an allow wins a tie.
    fn verdict(&self, ip: IpAddr) -> Option<&Rule> {
        self.rules
            .iter()
            .filter(|r| r.net.contains(&ip))
            .max_by_key(|r| (r.net.prefix_len(), r.allow))
    }

    fn denied(&self, ip: IpAddr, rule: &Rule) -> Denied {
        let link_local = LINK_LOCAL
            .iter()
            .any(|n| n.parse::<IpNet>().ok() == Some(rule.net));
        let fix = match (rule.origin, link_local) {
            (Origin::Default, true) => format!(
                "start cinder with --allow-link-local-targets or --scrape-allow-cidr {} to scrape it",
                rule.net
            ),
            _ => format!("start cinder with --scrape-allow-cidr covering {ip} to scrape it"),
        };
        Denied {
            ip,
            net: rule.net,
            why: match rule.origin {
                Origin::Default => " (cloud metadata services live there)",
                Origin::Flag => " (--scrape-deny-cidr)",
            },
            fix,
        }
    }
}

impl fmt::Display for AddressPolicy {
    /// `deny 169.254.0.0/16, …; allow …` for the startup log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |allow: bool| {
            self.rules
                .iter()
                .filter(|r| r.allow == allow)
                .map(|r| r.net.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(f, "deny {}; allow {}", list(false), list(true))
    }
}

/// Parses a `--scrape-deny-cidr`/`--scrape-allow-cidr` value: a CIDR, or one address.
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    if let Ok(net) = text.parse::<IpNet>() {
        return Ok(net);
    }
    text.parse::<IpAddr>()
        .map(IpNet::from)
        .map_err(|_| format!("{text:?} is not a CIDR such as 10.0.0.0/8 or fd00::/8"))
}

/// `ip` and every IPv4 address it stands for on the wire.
fn forms(ip: IpAddr) -> Vec<IpAddr> {
    let mut out = vec![ip];
    if let IpAddr::V6(v6) = ip
        && let Some(v4) = embedded_v4(v6)
    {
        out.push(IpAddr::V4(v4));
    }
    let unspecified = out.iter().any(|ip| match ip {
        IpAddr::V4(v4) => v4.octets()[0] == 0,
        IpAddr::V6(v6) => v6.is_unspecified(),
    });
    if unspecified {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    out
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 address.
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let low = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible (deprecated): ::a.b.c.d, but not :: and ::1 themselves.
    if s[..6] == [0; 6] && u32::from(low) > 1 {
        return Some(low);
    }
    // NAT64: the well-known 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..3] == [0x64, 0xff9b, 1] {
        return Some(low);
    }
    // 6to4: 2002:AABB:CCDD::/48.
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &AddressPolicy, ip: &str) -> bool {
        policy.check(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn metadata_addresses_are_refused_in_every_form() {
        let policy = AddressPolicy::default();
        for ip in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "febf::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:169.254.169.254",
            "::ffff:100.100.100.200",
            "::169.254.169.254",
            "::a9fe:a9fe",
            "64:ff9b::169.254.169.254",
            "64:ff9b::100.100.100.200",
            "64:ff9b:1::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(refused(&policy, ip), "{ip}");
        }
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "::1",
            "::",
            "fec0::1",
            "fd00:ec2::253",
            "100.100.100.201",
            "8.8.8.8",
            "::ffff:127.0.0.1",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(!refused(&policy, ip), "{ip}");
        }
    }

    #[test]
    fn link_local_alias_allows_link_local_but_not_the_other_metadata_addresses() {
        let policy = AddressPolicy::from_flags(&[], &[], true);
        assert!(!refused(&policy, "169.254.169.254"));
        assert!(!refused(&policy, "::ffff:169.254.169.254"));
        assert!(!refused(&policy, "fe80::1"));
        assert!(refused(&policy, "fd00:ec2::254"));
        assert!(refused(&policy, "100.100.100.200"));
    }

    #[test]
    fn the_most_specific_rule_wins() {
        let net = |s: &str| parse_cidr(s).unwrap();
        let policy = AddressPolicy::new(
            &[net("10.0.0.0/8"), net("127.0.0.0/8"), net("10.1.2.3")],
            &[net("10.1.0.0/16"), net("169.254.10.0/24")],
        );
        assert!(refused(&policy, "10.9.9.9"));
        assert!(!refused(&policy, "10.1.9.9"));
        assert!(refused(&policy, "10.1.2.3"));
        assert!(!refused(&policy, "169.254.10.1"));
        assert!(refused(&policy, "169.254.11.1"));
        // Denying loopback also covers its other spellings.
        for ip in [
            "127.0.0.1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "64:ff9b::7f00:1",
        ] {
            assert!(refused(&policy, ip), "{ip}");
        }
    }

    #[test]
    fn refusals_say_how_to_lift_them() {
        let err = AddressPolicy::default()
            .check("169.254.169.254".parse().unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("169.254.0.0/16"), "{err}");
        assert!(err.contains("--allow-link-local-targets"), "{err}");
        let policy = AddressPolicy::new(&[parse_cidr("127.0.0.0/8").unwrap()], &[]);
        let err = policy.check("127.0.0.1".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("--scrape-deny-cidr"), "{err}");
    }

    #[test]
    fn cidrs_parse_with_or_without_a_prefix() {
        assert_eq!(parse_cidr("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(parse_cidr("fd00::/8").unwrap().to_string(), "fd00::/8");
        assert!(parse_cidr("10.0.0.0/33").is_err());
        assert!(parse_cidr("example.com").is_err());
    }
}
