//! Names and host names derived from other names, exactly as Knative derives them.
//!
//! Why exact: revision names, child object names and URLs are visible to users and to their
//! scripts (`hello-00001`, `http://hello.default.example.com`), and a Knative user moving to
//! wisp expects the same ones. Hashing of long names follows knative.dev/pkg `kmeta.ChildName`
//! byte for byte; DNS checks return Kubernetes' own messages (k8s.io/apimachinery
//! `util/validation`).

use crate::md5;

/// Kubernetes' longest name for most objects.
pub const MAX_NAME_LEN: usize = 63;

/// A child object's name: `parent + suffix`, or, when that exceeds 63 characters, a name with
/// an MD5 hash inserted that keeps it unique (knative.dev/pkg `kmeta.ChildName`).
pub fn child_name(parent: &str, suffix: &str) -> String {
    const LONGEST: usize = 63;
    const HEAD: usize = LONGEST - 32;
    let (p, s) = (parent.as_bytes(), suffix.as_bytes());
    if p.len() + s.len() <= LONGEST {
        return format!("{parent}{suffix}");
    }
    if s.len() >= HEAD {
        // The suffix alone is too long: hash everything, keep a prefix of each.
        let hash = md5::hex(&[p, s].concat());
        let mut ret = p[..p.len().min(HEAD)].to_vec();
        ret.extend_from_slice(hash.as_bytes());
        if ret.len() < LONGEST {
            let d = LONGEST - ret.len();
            ret.extend_from_slice(&s[..d.min(s.len())]);
        }
        while ret.last().is_some_and(|b| !b.is_ascii_alphanumeric()) {
            ret.pop();
        }
        return String::from_utf8_lossy(&ret).into_owned();
    }
    let keep = HEAD - s.len();
    let mut n = p[..keep.min(p.len())].to_vec();
    n.extend_from_slice(md5::hex(p).as_bytes());
    n.extend_from_slice(s);
    String::from_utf8_lossy(&n).into_owned()
}

/// A Configuration's `generation`-th revision: `{config}-{generation:05}` (`hello-00001`),
/// through [`child_name`] so long names stay valid.
pub fn revision_name(config: &str, generation: i64) -> String {
    child_name(config, &format!("-{generation:05}"))
}

/// `{name}.{namespace}.{domain}`.
pub fn service_host(name: &str, namespace: &str, domain: &str) -> String {
    format!("{name}.{namespace}.{domain}")
}

/// `http://{name}.{namespace}.{domain}`: a Service's or Route's `status.url`.
pub fn service_url(name: &str, namespace: &str, domain: &str) -> String {
    format!("http://{}", service_host(name, namespace, domain))
}

/// `{tag}-{name}.{namespace}.{domain}`: the host of a tagged traffic target.
pub fn tag_host(tag: &str, name: &str, namespace: &str, domain: &str) -> String {
    format!("{tag}-{name}.{namespace}.{domain}")
}

/// `http://{tag}-{name}.{namespace}.{domain}`.
pub fn tag_url(tag: &str, name: &str, namespace: &str, domain: &str) -> String {
    format!("http://{}", tag_host(tag, name, namespace, domain))
}

/// `{name}.{namespace}.svc.cluster.local`: `status.address.url`'s host.
pub fn cluster_local_host(name: &str, namespace: &str) -> String {
    format!("{name}.{namespace}.svc.cluster.local")
}

/// `http://{name}.{namespace}.svc.cluster.local`.
pub fn cluster_local_url(name: &str, namespace: &str) -> String {
    format!("http://{}", cluster_local_host(name, namespace))
}

fn max_len_error(n: usize) -> String {
    format!("must be no more than {n} characters")
}

fn regex_error(msg: &str, fmt: &str, examples: &[&str]) -> String {
    let mut out = msg.to_string();
    if examples.is_empty() {
        out.push_str(&format!(" (regex used for validation is '{fmt}')"));
        return out;
    }
    out.push_str(" (e.g. ");
    for (i, e) in examples.iter().enumerate() {
        if i > 0 {
            out.push_str(" or ");
        }
        out.push_str(&format!("'{e}', "));
    }
    out.push_str(&format!("regex used for validation is '{fmt}')"));
    out
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?` (or with a leading `[a-z]` when `alpha_first`).
fn matches_label(v: &str, alpha_first: bool) -> bool {
    let b = v.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    let first_ok = if alpha_first {
        first.is_ascii_lowercase()
    } else {
        first.is_ascii_lowercase() || first.is_ascii_digit()
    };
    first_ok
        && (last.is_ascii_lowercase() || last.is_ascii_digit())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

fn matches_subdomain(v: &str) -> bool {
    v.split('.').all(|l| matches_label(l, false))
}

/// k8s `IsDNS1035Label`: empty when valid, else Kubernetes' messages.
pub fn is_dns1035_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_label(v, true) {
        errs.push(regex_error(
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character",
            "[a-z]([-a-z0-9]*[a-z0-9])?",
            &["my-name", "abc-123"],
        ));
    }
    errs
}

/// k8s `IsDNS1123Label`.
pub fn is_dns1123_label(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 63 {
        errs.push(max_len_error(63));
    }
    if !matches_label(v, false) {
        if matches_subdomain(v) {
            errs.push("must not contain dots".to_string());
        } else {
            errs.push(regex_error(
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character",
                "[a-z0-9]([-a-z0-9]*[a-z0-9])?",
                &["my-name", "123-abc"],
            ));
        }
    }
    errs
}

/// k8s `IsDNS1123Subdomain`.
pub fn is_dns1123_subdomain(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if v.len() > 253 {
        errs.push(max_len_error(253));
    }
    if !matches_subdomain(v) {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*",
            &["example.com"],
        ));
    }
    errs
}

/// k8s `NameIsDNS1035Label`: with `prefix` (a `generateName`), a trailing `-` is allowed.
pub fn name_is_dns1035_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1035_label(&mask_trailing_dash(name))
    } else {
        is_dns1035_label(name)
    }
}

/// k8s `NameIsDNSLabel` (namespace names).
pub fn name_is_dns1123_label(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_label(&mask_trailing_dash(name))
    } else {
        is_dns1123_label(name)
    }
}

/// k8s `NameIsDNSSubdomain` (ConfigMap, Secret, Event names).
pub fn name_is_dns1123_subdomain(name: &str, prefix: bool) -> Vec<String> {
    if prefix {
        is_dns1123_subdomain(&mask_trailing_dash(name))
    } else {
        is_dns1123_subdomain(name)
    }
}

/// Kubernetes' quirk, copied: `"ab-"` is checked as `"aa"` (the last two bytes become `a`).
fn mask_trailing_dash(name: &str) -> String {
    if name.len() > 1 && name.ends_with('-') {
        let cut = name.len() - 2;
        if name.is_char_boundary(cut) {
            return format!("{}a", &name[..cut]);
        }
    }
    name.to_string()
}

const LABEL_KEY_FMT: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_KEY_MSG: &str = "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character";

fn matches_label_key_name(v: &str) -> bool {
    let b = v.as_bytes();
    let (Some(first), Some(last)) = (b.first(), b.last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// k8s `IsQualifiedName`: `[prefix/]name`, as label keys and revision references are checked.
pub fn is_qualified_name(v: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = v.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    is_dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            *name
        }
        _ => {
            errs.push(format!(
                "a valid label key {} with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
                regex_error(LABEL_KEY_MSG, LABEL_KEY_FMT, &["MyName", "my.name", "123-abc"])
            ));
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push(format!("name part {}", max_len_error(63)));
    }
    if !matches_label_key_name(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                LABEL_KEY_MSG,
                LABEL_KEY_FMT,
                &["MyName", "my.name", "123-abc"]
            )
        ));
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn child_name_matches_knative() {
        // Cases and expected values from knative.dev/pkg kmeta/names_test.go.
        let f63 = "f".repeat(63);
        let table: Vec<(String, String, &str)> = vec![
            ("asdf".into(), "-deployment".into(), "asdf-deployment"),
            (
                f63.clone(),
                "-deployment".into(),
                "ffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deployment",
            ),
            (
                f63.clone(),
                "-deploy".into(),
                "ffffffffffffffffffffffff105d7597f637e83cc711605ac3ea4957-deploy",
            ),
            (
                f63.clone(),
                f63.clone(),
                "fffffffffffffffffffffffffffffff0502661254f13c89973cb3a83e0cbec0",
            ),
            (
                "a".into(),
                f63.clone(),
                "ab5cfd486935decbc0d305799f4ce4414ffffffffffffffffffffffffffffff",
            ),
            (
                "b".repeat(32),
                "f".repeat(32),
                "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb329c7c81b9ab3ba71aa139066aa5625d",
            ),
            (
                "aaaa".into(),
                "b---a".repeat(20),
                "aaaa7a3f7966594e3f0849720eced8212c18b---ab---ab---ab---ab---ab",
            ),
            (
                "a".repeat(17),
                "a.-.-.-.-.-.-.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".into(),
                "aaaaaaaaaaaaaaaaaa1eb10dc911444f8434af83b7225442da",
            ),
        ];
        for (parent, suffix, want) in table {
            let got = child_name(&parent, &suffix);
            assert_eq!(got, want, "{parent} + {suffix}");
            assert!(is_dns1123_subdomain(&got).is_empty());
        }
    }

    #[test]
    fn revision_names() {
        assert_eq!(revision_name("hello", 1), "hello-00001");
        assert_eq!(revision_name("hello", 123456), "hello-123456");
        let long = "a".repeat(60);
        let got = revision_name(&long, 1);
        assert_eq!(got.len(), 63);
        assert!(got.ends_with("-00001"));
        assert_eq!(
            got,
            format!("{}{}-00001", &long[..25], crate::md5::hex(long.as_bytes()))
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            service_url("hello", "default", "localhost"),
            "http://hello.default.localhost"
        );
        assert_eq!(
            tag_host("v1", "hello", "default", "example.com"),
            "v1-hello.default.example.com"
        );
        assert_eq!(tag_url("v1", "hello", "ns", "d"), "http://v1-hello.ns.d");
        assert_eq!(
            cluster_local_host("hello", "default"),
            "hello.default.svc.cluster.local"
        );
        assert_eq!(cluster_local_url("a", "b"), "http://a.b.svc.cluster.local");
    }

    #[test]
    fn dns_checks() {
        let ok1035 = ["a", "abc", "a-1", "my-name"];
        for v in ok1035 {
            assert!(is_dns1035_label(v).is_empty(), "{v}");
        }
        for v in ["", "1a", "a-", "A", "a.b", "a_b"] {
            assert_eq!(is_dns1035_label(v).len(), 1, "{v}");
        }
        assert_eq!(
            is_dns1035_label(&"a".repeat(64)),
            vec!["must be no more than 63 characters".to_string()]
        );
        assert_eq!(
            is_dns1035_label("Hello")[0],
            "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"
        );
        assert!(is_dns1123_label("1abc").is_empty());
        assert_eq!(
            is_dns1123_label("a.b"),
            vec!["must not contain dots".to_string()]
        );
        assert!(is_dns1123_subdomain("a.b-c.d").is_empty());
        assert_eq!(is_dns1123_subdomain("a..b").len(), 1);
        assert!(name_is_dns1035_label("hello-", true).is_empty());
        assert_eq!(name_is_dns1035_label("hello-", false).len(), 1);
    }

    #[test]
    fn qualified_names() {
        assert!(is_qualified_name("hello-00001").is_empty());
        assert!(is_qualified_name("example.com/My_name.1").is_empty());
        assert_eq!(is_qualified_name("-x").len(), 1);
        assert_eq!(is_qualified_name("a/b/c").len(), 1);
        assert_eq!(
            is_qualified_name("/x"),
            vec!["prefix part must be non-empty".to_string()]
        );
    }
}
