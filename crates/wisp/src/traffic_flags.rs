//! `--traffic`, `--tag` and `--untag`: kn's traffic computation, ported line by line from
//! knative/client `pkg/traffic/compute.go` (same precedence, same messages), as a pure
//! function so its table tests (ported from `compute_test.go`) need no server.
//!
//! Precedence, as in kn: untag first, then tag `@latest`, then tag other revisions, then (when
//! `--traffic` was given, or on create with tags) reset every percentage and assign the given
//! ones: `@latest`, then tags, then revision names. Targets with neither tag nor traffic are
//! dropped. When the given percentages sum to less than 100, the rest goes to the one revision
//! of the current status traffic that was not named (or to `@latest` when the update creates a
//! new revision).

use std::collections::HashMap;

use wisp_api::serving::TrafficTarget;

/// kn's name for "the latest ready revision".
pub const LATEST_REF: &str = "@latest";
/// Annotation kn reads for a revision's tags (only kn ever sets it; kept for fidelity).
pub const REVISION_TAGS_ANNOTATION: &str = "client.knative.dev/tags";

/// The traffic flags, each already split at commas (kn's `StringSlice` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrafficFlags {
    /// `--traffic REF=PERCENT` (REF: revision, tag or `@latest`).
    pub traffic: Vec<String>,
    /// `--tag REF=TAG` (or just `TAG` for `@latest`).
    pub tags: Vec<String>,
    /// `--untag TAG`.
    pub untag: Vec<String>,
}

impl TrafficFlags {
    /// Whether any of the three flags was given.
    pub fn changed(&self) -> bool {
        !self.traffic.is_empty() || !self.tags.is_empty() || !self.untag.is_empty()
    }
}

/// A revision of the service, as the computation needs it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RevisionRef {
    pub name: String,
    /// Its `client.knative.dev/tags` annotation, if any.
    pub tags_annotation: Option<String>,
}

/// The service as the computation sees it.
#[derive(Debug, Clone, Default)]
pub struct ServiceTrafficState<'a> {
    pub name: &'a str,
    /// `spec.traffic`: what gets edited.
    pub spec_traffic: &'a [TrafficTarget],
    /// `status.traffic`: which revisions currently get traffic (used to place the remainder).
    pub status_traffic: &'a [TrafficTarget],
    /// `status.latestReadyRevisionName`.
    pub latest_ready_revision: &'a str,
}

/// How the command was invoked.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComputeMode {
    /// The command also changes the revision template (a new revision will appear).
    pub mutation: bool,
    /// `service create` (tags on create imply `@latest=100`).
    pub create: bool,
}

fn split_by_equal_sign(pair: &str) -> Result<(String, String), String> {
    let parts: Vec<&str> = pair.split('=').collect();
    if parts.len() == 1 {
        return Ok((LATEST_REF.to_string(), parts[0].to_string()));
    }
    if parts.len() != 2 || parts[0].is_empty() || parts[1].is_empty() {
        return Err(format!(
            "expecting the value format in value1=value2, given {pair}"
        ));
    }
    Ok((
        parts[0].to_string(),
        parts[1].trim_end_matches_once('%').to_string(),
    ))
}

trait TrimOnce {
    fn trim_end_matches_once(&self, suffix: char) -> &str;
}

impl TrimOnce for str {
    /// Go's `strings.TrimSuffix`: removes one occurrence.
    fn trim_end_matches_once(&self, suffix: char) -> &str {
        self.strip_suffix(suffix).unwrap_or(self)
    }
}

fn is_latest(t: &TrafficTarget) -> bool {
    t.latest_revision.unwrap_or(t.revision_name.is_empty())
}

fn new_target(tag: &str, revision: &str, percent: i64, latest: bool) -> TrafficTarget {
    TrafficTarget {
        tag: tag.to_string(),
        revision_name: if latest {
            String::new()
        } else {
            revision.to_string()
        },
        latest_revision: Some(latest),
        percent: Some(percent),
        ..TrafficTarget::default()
    }
}

fn error_repeating_revision(for_flag: &str, name: &str) -> String {
    let name = if name == LATEST_REF {
        format!("identifier {LATEST_REF}")
    } else {
        format!("revision reference {name}")
    };
    format!("repetition of {name} is not allowed, use only once with {for_flag} flag")
}

enum DistributionError {
    RevisionCount,
    RevisionNotFound,
}

fn error_traffic_distribution(sum: i64, reason: DistributionError) -> String {
    let msg = match reason {
        DistributionError::RevisionCount => {
            "incorrect number of revisions specified. Only 1 revision should be missing"
        }
        DistributionError::RevisionNotFound => "cannot determine the missing revision",
    };
    format!(
        "unable to allocate the remaining traffic: {}%. Reason: {msg}",
        100 - sum
    )
}

/// kn's `verifyLatestTag`.
fn verify_latest_tag(tags: &[String]) -> Result<(), String> {
    let mut latest_tagged = false;
    for each in tags {
        let (revision, _) = split_by_equal_sign(each)?;
        if revision == LATEST_REF {
            if latest_tagged {
                return Err(error_repeating_revision("--tag", LATEST_REF));
            }
            latest_tagged = true;
        }
    }
    Ok(())
}

/// kn's `verifyRevisionSumAndReferences`: reference -> position, and the sum.
fn verify_revision_sum_and_references(
    traffic: &[String],
) -> Result<(HashMap<String, usize>, i64), String> {
    let mut refs = HashMap::new();
    let mut sum = 0;
    for (i, each) in traffic.iter().enumerate() {
        let (revision_ref, percent) = split_by_equal_sign(each)?;
        if refs.contains_key(&revision_ref) {
            return Err(error_repeating_revision("--traffic", &revision_ref));
        }
        refs.insert(revision_ref, i);
        let p: i64 = percent.parse().map_err(|_| {
            format!("error converting given {percent} to integer value for traffic distribution")
        })?;
        if !(0..=100).contains(&p) {
            return Err(format!(
                "invalid value for traffic percent {p}, expected 0 <= percent <= 100"
            ));
        }
        sum += p;
    }
    Ok((refs, sum))
}

/// kn's `verifyInput`: validates the flags and, when they sum to less than 100, appends the
/// remainder for the one revision left out.
fn verify_input(
    traffic: &mut Vec<String>,
    tags: &[String],
    svc: &ServiceTrafficState<'_>,
    revisions: &[RevisionRef],
    mutation: bool,
) -> Result<(), String> {
    let targets = svc.status_traffic;
    let existing = targets.len();
    verify_latest_tag(tags)?;
    let (mut refs, sum) = verify_revision_sum_and_references(traffic)?;
    if sum == 100 {
        return Ok(());
    }
    if sum > 100 {
        return Err(format!("given traffic percents sum to {sum}, want <=100"));
    }
    let latest_ref_traffic = refs.contains_key(LATEST_REF);
    let given = traffic.len();
    if given == 0 {
        return Ok(());
    }
    if given + 1 < existing {
        return Err(error_traffic_distribution(
            sum,
            DistributionError::RevisionCount,
        ));
    }
    if mutation {
        if given != existing {
            return Err(error_traffic_distribution(
                sum,
                DistributionError::RevisionCount,
            ));
        }
        if !latest_ref_traffic {
            // The rest can only go to the revision about to be created.
            traffic.push(format!("{LATEST_REF}={}", 100 - sum));
            return Ok(());
        }
    } else {
        if given + 1 != existing {
            return Err(error_traffic_distribution(
                sum,
                DistributionError::RevisionCount,
            ));
        }
        if latest_ref_traffic {
            refs.insert(svc.latest_ready_revision.to_string(), 0);
        }
    }
    for target in targets {
        let Some(rev) = revisions.iter().find(|r| r.name == target.revision_name) else {
            break;
        };
        let tag_named = rev
            .tags_annotation
            .as_ref()
            .is_some_and(|t| refs.contains_key(t));
        if !refs.contains_key(&rev.name) && !tag_named {
            traffic.push(format!("{}={}", rev.name, 100 - sum));
            return Ok(());
        }
    }
    Err(error_traffic_distribution(
        sum,
        DistributionError::RevisionNotFound,
    ))
}

/// The new `spec.traffic` of a service after `flags` (kn's `traffic.Compute`). `revisions`
/// are the service's revisions (used only to place a remainder below 100%).
pub fn compute(
    svc: &ServiceTrafficState<'_>,
    flags: &TrafficFlags,
    revisions: &[RevisionRef],
    mode: ComputeMode,
) -> Result<Vec<TrafficTarget>, String> {
    let mut percentages = flags.traffic.clone();
    if mode.create && !flags.tags.is_empty() {
        percentages = vec![format!("{LATEST_REF}=100")];
    }
    verify_input(&mut percentages, &flags.tags, svc, revisions, mode.mutation)?;

    let mut traffic: Vec<TrafficTarget> = svc.spec_traffic.to_vec();

    // First precedence: untag.
    let mut missing = Vec::new();
    for tag in &flags.untag {
        match traffic.iter_mut().find(|t| &t.tag == tag) {
            Some(t) => t.tag.clear(),
            None => missing.push(tag.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(format!(
            "tag(s) {} not present for any revisions of service {}",
            missing.join(", "),
            svc.name
        ));
    }

    for each in &flags.tags {
        let (revision, tag) = split_by_equal_sign(each)?;
        let tag_present = |traffic: &[TrafficTarget]| traffic.iter().any(|t| t.tag == tag);
        // Second precedence: tag @latest.
        if revision == LATEST_REF {
            let existing = traffic
                .iter()
                .find(|t| is_latest(t))
                .map(|t| t.tag.clone())
                .unwrap_or_default();
            if existing == tag {
                continue;
            }
            if tag_present(&traffic) {
                return Err(format!(
                    "refusing to overwrite existing tag in service, add flag '--untag {tag}' in command to untag it"
                ));
            }
            if existing.is_empty() {
                match traffic.iter_mut().find(|t| is_latest(t)) {
                    Some(t) => t.tag = tag.clone(),
                    None => traffic.push(new_target(&tag, "", 0, true)),
                }
                continue;
            }
            return Err(format!(
                "tag '{existing}' exists on latest ready revision of service, refusing to overwrite existing tag with '{tag}', add flag '--untag {existing}' in command to untag it"
            ));
        }
        // Third precedence: tag other revisions.
        if traffic
            .iter()
            .any(|t| t.tag == tag && t.revision_name == revision)
        {
            continue;
        }
        if tag_present(&traffic) {
            return Err(format!(
                "refusing to overwrite existing tag in service, add flag '--untag {tag}' in command to untag it"
            ));
        }
        // kn's TagRevision: tag the revision's first target if it has no tag yet (a revision
        // that already has one gets a second target).
        match traffic.iter().position(|t| t.revision_name == revision) {
            Some(i) if traffic[i].tag.is_empty() => traffic[i].tag = tag,
            _ => traffic.push(new_target(&tag, &revision, 0, false)),
        }
    }

    if !flags.traffic.is_empty() || (mode.create && !flags.tags.is_empty()) {
        // What is on the command line is the desired split: start from zero.
        for t in &mut traffic {
            t.percent = Some(0);
        }
        for each in &percentages {
            let (revision_ref, percent) = split_by_equal_sign(each)?;
            let percent: i64 = percent.parse().unwrap_or(0);
            // Fourth precedence: @latest.
            if revision_ref == LATEST_REF {
                match traffic.iter_mut().find(|t| is_latest(t)) {
                    Some(t) => t.percent = Some(percent),
                    None => traffic.push(new_target("", "", percent, true)),
                }
                continue;
            }
            // Fifth: a tag (tags are unique, so they win over revision names), then a revision.
            if let Some(t) = traffic.iter_mut().find(|t| t.tag == revision_ref) {
                t.percent = Some(percent);
                continue;
            }
            if let Some(t) = traffic.iter_mut().find(|t| t.revision_name == revision_ref) {
                t.percent = Some(percent);
                continue;
            }
            traffic.push(new_target("", &revision_ref, percent, false));
        }
    }

    // Drop targets with neither a tag nor traffic.
    traffic.retain(|t| !t.tag.is_empty() || t.percent.unwrap_or(0) != 0);
    Ok(traffic)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// kn's test helper `newTarget`.
    fn target(tag: &str, revision: &str, percent: i64, latest: bool) -> TrafficTarget {
        new_target(tag, revision, percent, latest)
    }

    /// Parses a kn test's `inputFlags` (`--traffic a=1,b=2 --tag x=y --untag z`).
    fn flags(args: &[&str]) -> TrafficFlags {
        let mut f = TrafficFlags::default();
        for pair in args.chunks(2) {
            let values = pair[1].split(',').map(str::to_string);
            match pair[0] {
                "--traffic" => f.traffic.extend(values),
                "--tag" => f.tags.extend(values),
                "--untag" => f.untag.extend(values),
                other => panic!("unknown flag {other}"),
            }
        }
        f
    }

    fn revs(names: &[&str]) -> Vec<RevisionRef> {
        names
            .iter()
            .map(|n| RevisionRef {
                name: n.to_string(),
                tags_annotation: None,
            })
            .collect()
    }

    struct Case {
        name: &'static str,
        existing: Vec<TrafficTarget>,
        input: &'static [&'static str],
        /// "@latest" means latestRevision: true; anything else is the revision name.
        desired_revisions: &'static [&'static str],
        desired_tags: &'static [&'static str],
        desired_percents: &'static [i64],
        revisions: Vec<RevisionRef>,
        mutation: bool,
        latest: &'static str,
    }

    fn case(
        name: &'static str,
        existing: Vec<TrafficTarget>,
        input: &'static [&'static str],
    ) -> Case {
        Case {
            name,
            existing,
            input,
            desired_revisions: &[],
            desired_tags: &[],
            desired_percents: &[],
            revisions: Vec::new(),
            mutation: false,
            latest: "",
        }
    }

    fn run(c: &Case) -> Result<Vec<TrafficTarget>, String> {
        // kn's getService uses the same list for spec and status traffic.
        let svc = ServiceTrafficState {
            name: "serviceName",
            spec_traffic: &c.existing,
            status_traffic: &c.existing,
            latest_ready_revision: c.latest,
        };
        compute(
            &svc,
            &flags(c.input),
            &c.revisions,
            ComputeMode {
                mutation: c.mutation,
                create: false,
            },
        )
    }

    /// kn's `TestCompute`.
    #[test]
    fn compute_cases() {
        let three = || revs(&["rev-00001", "rev-00002", "rev-00003"]);
        let cases = vec![
            Case {
                desired_revisions: &["@latest"],
                desired_tags: &["latest"],
                desired_percents: &[100],
                ..case(
                    "assign 'latest' tag to @latest revision",
                    vec![target("", "", 100, true)],
                    &["--tag", "@latest=latest"],
                )
            },
            Case {
                desired_revisions: &["@latest"],
                desired_tags: &["latest"],
                desired_percents: &[100],
                ..case(
                    "assign 'latest' tag to @latest revision without specifying key",
                    vec![target("", "", 100, true)],
                    &["--tag", "latest"],
                )
            },
            Case {
                desired_revisions: &["echo-v1"],
                desired_tags: &["stable"],
                desired_percents: &[100],
                ..case(
                    "assign tag to revision",
                    vec![target("", "echo-v1", 100, false)],
                    &["--tag", "echo-v1=stable"],
                )
            },
            Case {
                desired_revisions: &[""],
                desired_tags: &["current"],
                desired_percents: &[100],
                ..case(
                    "re-assign same tag to same revision (unchanged)",
                    vec![target("current", "", 100, true)],
                    &["--tag", "@latest=current"],
                )
            },
            Case {
                desired_revisions: &["@latest", "rev-v1"],
                desired_tags: &["", ""],
                desired_percents: &[10, 90],
                ..case(
                    "split traffic to tags",
                    vec![target("", "", 100, true), target("", "rev-v1", 0, false)],
                    &["--traffic", "@latest=10,rev-v1=90"],
                )
            },
            Case {
                desired_revisions: &["@latest", "rev-v1"],
                desired_tags: &["", ""],
                desired_percents: &[10, 90],
                ..case(
                    "split traffic to tags with '%' suffix",
                    vec![target("", "", 100, true), target("", "rev-v1", 0, false)],
                    &["--traffic", "@latest=10%,rev-v1=90%"],
                )
            },
            Case {
                desired_revisions: &["@latest", "echo-v0", "echo-v1"],
                desired_tags: &["latest", "stale", "old"],
                desired_percents: &[100, 0, 0],
                ..case(
                    "add 2 more tagged revisions without giving them traffic portions",
                    vec![target("latest", "", 100, true)],
                    &["--tag", "echo-v0=stale,echo-v1=old"],
                )
            },
            Case {
                desired_revisions: &["echo-v1"],
                desired_tags: &["latest"],
                desired_percents: &[100],
                ..case(
                    "re-assign same tag to 'echo-v1' revision",
                    vec![target("latest", "echo-v1", 100, false)],
                    &["--tag", "echo-v1=latest"],
                )
            },
            Case {
                desired_revisions: &["echo-v1", "@latest"],
                desired_tags: &["latest", ""],
                desired_percents: &[98, 2],
                ..case(
                    "set 2% traffic to latest revision by appending it in traffic block",
                    vec![target("latest", "echo-v1", 100, false)],
                    &["--traffic", "@latest=2,echo-v1=98"],
                )
            },
            Case {
                desired_revisions: &["echo-v1", "@latest"],
                desired_tags: &["latest", "testing"],
                desired_percents: &[98, 2],
                ..case(
                    "set 2% to @latest with tag (append it in traffic block)",
                    vec![target("latest", "echo-v1", 100, false)],
                    &[
                        "--traffic",
                        "@latest=2,echo-v1=98",
                        "--tag",
                        "@latest=testing",
                    ],
                )
            },
            Case {
                desired_revisions: &["echo-v1", "echo-v2"],
                desired_tags: &["v1", "v2"],
                desired_percents: &[10, 90],
                ..case(
                    "change traffic percent of an existing revision in traffic block, add new revision with traffic share",
                    vec![target("v1", "echo-v1", 100, false)],
                    &["--tag", "echo-v2=v2", "--traffic", "v1=10,v2=90"],
                )
            },
            Case {
                desired_revisions: &["echo-v1"],
                desired_tags: &[""],
                desired_percents: &[100],
                ..case(
                    "untag 'latest' tag from 'echo-v1' revision",
                    vec![target("latest", "echo-v1", 100, false)],
                    &["--untag", "latest"],
                )
            },
            Case {
                desired_revisions: &["echo-v1", "echo-v2"],
                desired_tags: &["old", "latest"],
                desired_percents: &[50, 50],
                ..case(
                    "replace revision pointing to 'latest' tag from 'echo-v1' to 'echo-v2' revision",
                    vec![
                        target("latest", "echo-v1", 50, false),
                        target("", "echo-v2", 50, false),
                    ],
                    &["--untag", "latest", "--tag", "echo-v1=old,echo-v2=latest"],
                )
            },
            Case {
                desired_revisions: &["echo-v1", "echo-v2", "echo-v1"],
                desired_tags: &["latest", "", "current"],
                desired_percents: &[50, 50, 0],
                ..case(
                    "have multiple tags for a revision, revision present in traffic block",
                    vec![
                        target("latest", "echo-v1", 50, false),
                        target("", "echo-v2", 50, false),
                    ],
                    &["--tag", "echo-v1=latest,echo-v1=current"],
                )
            },
            Case {
                desired_revisions: &["echo-v2", "echo-v1", "echo-v1"],
                desired_tags: &["", "latest", "current"],
                desired_percents: &[100, 0, 0],
                ..case(
                    "have multiple tags for a revision, revision absent in traffic block",
                    vec![target("", "echo-v2", 100, false)],
                    &["--tag", "echo-v1=latest,echo-v1=current"],
                )
            },
            Case {
                desired_revisions: &[""],
                desired_tags: &["current"],
                desired_percents: &[100],
                ..case(
                    "re-assign same tag 'current' to @latest",
                    vec![target("current", "", 100, true)],
                    &["--tag", "@latest=current"],
                )
            },
            Case {
                desired_revisions: &["", "echo-v1"],
                desired_tags: &["", ""],
                desired_percents: &[90, 10],
                ..case(
                    "assign echo-v1 10% traffic adjusting rest to @latest, echo-v1 isn't present in existing traffic block",
                    vec![target("", "", 100, true)],
                    &["--traffic", "echo-v1=10,@latest=90"],
                )
            },
            Case {
                desired_revisions: &["rev-00001", "rev-00002", "rev-00003"],
                desired_tags: &["", "", ""],
                desired_percents: &[10, 10, 80],
                revisions: three(),
                ..case(
                    "traffic split with sum < 100 should work for n-1 revisions",
                    vec![
                        target("", "rev-00001", 0, false),
                        target("", "rev-00002", 0, false),
                        target("", "rev-00003", 100, false),
                    ],
                    &["--traffic", "rev-00001=10,rev-00002=10"],
                )
            },
            Case {
                desired_revisions: &["rev-00001", "rev-00002", "", "rev-00003"],
                desired_tags: &["", "", "", ""],
                desired_percents: &[10, 30, 20, 40],
                revisions: three(),
                mutation: true,
                latest: "rev-00003",
                ..case(
                    "traffic split sum < 100 with @latest which mutates service should specify N revs",
                    vec![
                        target("", "rev-00001", 0, false),
                        target("", "rev-00002", 0, false),
                        target("", "rev-00003", 100, true),
                    ],
                    &["--traffic", "rev-00001=10,rev-00003=40,@latest=20"],
                )
            },
            Case {
                desired_revisions: &["rev-00001", "rev-00002", ""],
                desired_tags: &["", "", ""],
                desired_percents: &[10, 70, 20],
                revisions: three(),
                mutation: false,
                latest: "rev-00003",
                ..case(
                    "traffic split sum < 100 with @latest and does not mutate the service should specify N-1 revs",
                    vec![
                        target("", "rev-00001", 0, false),
                        target("", "rev-00002", 0, false),
                        target("", "rev-00003", 100, true),
                    ],
                    &["--traffic", "rev-00001=10,@latest=20"],
                )
            },
            Case {
                desired_revisions: &["rev-00001", "rev-00002", "", "rev-00003"],
                desired_tags: &["", "", "", ""],
                desired_percents: &[10, 30, 20, 40],
                revisions: three(),
                mutation: true,
                latest: "rev-00003",
                ..case(
                    "traffic split sum < 100 without which mutates service should specify N revs. Remaining should go to @latest",
                    vec![
                        target("", "rev-00001", 0, false),
                        target("", "rev-00002", 0, false),
                        target("", "rev-00003", 100, true),
                    ],
                    &["--traffic", "rev-00001=10,rev-00003=40,rev-00002=30"],
                )
            },
        ];
        for c in cases {
            assert_eq!(
                c.desired_percents.len(),
                c.desired_revisions.len(),
                "{}",
                c.name
            );
            assert_eq!(
                c.desired_tags.len(),
                c.desired_revisions.len(),
                "{}",
                c.name
            );
            let got = match run(&c) {
                Ok(t) => t,
                Err(e) => panic!("{}: {e}", c.name),
            };
            assert_eq!(got.len(), c.desired_revisions.len(), "{}: {got:?}", c.name);
            for (i, t) in got.iter().enumerate() {
                if c.desired_revisions[i] == LATEST_REF {
                    assert_eq!(t.latest_revision, Some(true), "{} [{i}]", c.name);
                } else {
                    assert_eq!(t.revision_name, c.desired_revisions[i], "{} [{i}]", c.name);
                }
                assert_eq!(t.tag, c.desired_tags[i], "{} [{i}]", c.name);
                assert_eq!(t.percent, Some(c.desired_percents[i]), "{} [{i}]", c.name);
            }
        }
    }

    /// kn's `TestComputeErrMsg`.
    #[test]
    fn compute_errors() {
        let three = || revs(&["rev-00001", "rev-00002", "rev-00003"]);
        let cases: Vec<(Case, String)> = vec![
            (case("invalid format for --traffic option", vec![target("", "", 100, true)], &["--traffic", "@latest=100=latest"]),
             "expecting the value format in value1=value2, given @latest=100=latest".into()),
            (case("invalid format for --tag option", vec![target("", "", 100, true)], &["--tag", "@latest="]),
             "expecting the value format in value1=value2, given @latest=".into()),
            (case("repeatedly splitting traffic to @latest revision", vec![target("", "", 100, true)], &["--traffic", "@latest=90,@latest=10"]),
             "repetition of identifier @latest is not allowed, use only once with --traffic flag".into()),
            (case("repeatedly tagging to @latest revision not allowed", vec![target("", "", 100, true)], &["--tag", "@latest=latest,@latest=2"]),
             "repetition of identifier @latest is not allowed, use only once with --tag flag".into()),
            (case("repeatedly tagging to @latest revision not allowed, without key", vec![target("", "", 100, true)], &["--tag", "latest,current"]),
             "repetition of identifier @latest is not allowed, use only once with --tag flag".into()),
            (case("overwriting tag not allowed, to @latest from other revision", vec![target("latest", "", 2, true), target("stable", "echo-v2", 98, false)], &["--tag", "@latest=stable"]),
             "refusing to overwrite existing tag in service, add flag '--untag stable' in command to untag it".into()),
            (case("overwriting tag not allowed, to a revision from other revision", vec![target("latest", "", 2, true), target("stable", "echo-v2", 98, false)], &["--tag", "echo-v2=latest"]),
             "refusing to overwrite existing tag in service, add flag '--untag latest' in command to untag it".into()),
            (case("overwriting tag of @latest not allowed, existing != requested", vec![target("candidate", "", 100, true)], &["--tag", "@latest=current"]),
             "tag 'candidate' exists on latest ready revision of service, refusing to overwrite existing tag with 'current', add flag '--untag candidate' in command to untag it".into()),
            (case("verify error for non integer values given to percent", vec![target("", "", 100, true)], &["--traffic", "@latest=100p"]),
             "error converting given 100p to integer value for traffic distribution".into()),
            (case("verify error for traffic sum not equal to 100", vec![target("", "", 100, true)], &["--traffic", "@latest=40,echo-v1=70"]),
             "given traffic percents sum to 110, want <=100".into()),
            (case("verify error for values out of range given to percent", vec![target("", "", 100, true)], &["--traffic", "@latest=-100"]),
             "invalid value for traffic percent -100, expected 0 <= percent <= 100".into()),
            (case("repeatedly splitting traffic to the same revision", vec![target("", "", 100, true)], &["--traffic", "echo-v1=40", "--traffic", "echo-v1=60"]),
             "repetition of revision reference echo-v1 is not allowed, use only once with --traffic flag".into()),
            (case("untag single tag that does not exist", vec![target("latest", "echo-v1", 100, false)], &["--untag", "foo"]),
             "tag(s) foo not present for any revisions of service serviceName".into()),
            (case("untag multiple tags that do not exist", vec![target("latest", "echo-v1", 100, false)], &["--untag", "foo", "--untag", "bar"]),
             "tag(s) foo, bar not present for any revisions of service serviceName".into()),
            (Case { revisions: three(), ..case("traffic split sum < 100 should have N-1 revisions specified", vec![target("", "rev-00001", 0, false), target("", "rev-00002", 0, false), target("", "rev-00003", 100, false)], &["--traffic", "rev-00001=10"]) },
             error_traffic_distribution(10, DistributionError::RevisionCount)),
            (Case { revisions: three(), mutation: true, ..case("traffic split sum < 100 with @latest which mutates service should specify N revs", vec![target("", "rev-00001", 0, false), target("", "rev-00002", 0, false), target("", "rev-00003", 100, true)], &["--traffic", "rev-00001=10,@latest=20"]) },
             error_traffic_distribution(30, DistributionError::RevisionCount)),
            (Case { revisions: three(), mutation: false, ..case("traffic split sum < 100 with @latest and mutates the service should specify N revs", vec![target("", "rev-00001", 0, false), target("", "rev-00002", 0, false), target("", "rev-00003", 100, true)], &["--traffic", "rev-00001=10,rev-00002=10,@latest=20"]) },
             error_traffic_distribution(40, DistributionError::RevisionCount)),
            (Case {
                revisions: vec![
                    RevisionRef { name: "rev-00001".into(), tags_annotation: Some("rev-00003".into()) },
                    RevisionRef { name: "rev-00003".into(), tags_annotation: None },
                ],
                ..case("traffic split sum < 100 error when remaining revision not found", vec![target("rev-00003", "rev-00001", 0, false), target("", "rev-00002", 0, false), target("", "rev-00003", 100, true)], &["--traffic", "rev-00003=10,rev-00001=20"])
             },
             error_traffic_distribution(30, DistributionError::RevisionNotFound)),
        ];
        for (c, want) in cases {
            match run(&c) {
                Ok(t) => panic!("{}: want error {want:?}, got {t:?}", c.name),
                Err(e) => assert!(
                    e.contains(&want),
                    "{}: {e:?} does not contain {want:?}",
                    c.name
                ),
            }
        }
        assert_eq!(
            error_traffic_distribution(10, DistributionError::RevisionCount),
            "unable to allocate the remaining traffic: 90%. Reason: incorrect number of revisions specified. Only 1 revision should be missing"
        );
    }

    #[test]
    fn tags_on_create_send_all_traffic_to_latest() {
        let svc = ServiceTrafficState {
            name: "hello",
            ..ServiceTrafficState::default()
        };
        let mode = ComputeMode {
            mutation: true,
            create: true,
        };
        let got = compute(&svc, &flags(&["--tag", "@latest=current"]), &[], mode);
        assert_eq!(got, Ok(vec![target("current", "", 100, true)]));
        let got = compute(&svc, &flags(&["--tag", "hello-v0=old"]), &[], mode);
        assert_eq!(
            got,
            Ok(vec![
                target("old", "hello-v0", 0, false),
                target("", "", 100, true)
            ])
        );
        assert!(!TrafficFlags::default().changed());
    }
}
