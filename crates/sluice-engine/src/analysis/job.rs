//! The pure part of the `job` provider (upstream `metricproviders/job`): the batch/v1 Job a
//! measurement creates, and how the Job's (and its pods') status maps to the measurement. The
//! controller creates/reads/deletes the Job.
//!
//! Upstream facts kept: the Job is named `<run uid>.<metric>.<n>` where `n` = count + error + 1
//! of the metric result, the metric part shortened to keep the name within 63 characters; it
//! carries the label `analysisrun.argoproj.io/uid` (also on its pod template) and annotations
//! naming the run and metric; it is controller-owned by the AnalysisRun unless created in
//! another namespace; the measurement's metadata holds `job-name`/`job-namespace`. A Job with
//! condition Complete → Successful, Failed → Failed; a pod container waiting on
//! ErrImagePull/ImagePullBackOff/InvalidImageName → Inconclusive with the pod's error; otherwise
//! it is checked again after √(2·elapsed seconds). Terminating deletes the Job and makes the
//! measurement Inconclusive (message "Metric Terminated").

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::analysis::evaluate::{MetricCounts, Phase};
use sluice_api::analysis::JobMetric;

/// Label linking a Job (and its pods) to the AnalysisRun's UID.
pub const ANALYSIS_RUN_UID_LABEL: &str = "analysisrun.argoproj.io/uid";
pub const ANALYSIS_RUN_NAME_ANNOTATION: &str = "analysisrun.argoproj.io/name";
pub const ANALYSIS_RUN_NAMESPACE_ANNOTATION: &str = "analysisrun.argoproj.io/namespace";
pub const ANALYSIS_RUN_METRIC_ANNOTATION: &str = "analysisrun.argoproj.io/metric-name";
/// Measurement metadata keys pointing at the Job.
pub const JOB_NAME_KEY: &str = "job-name";
pub const JOB_NAMESPACE_KEY: &str = "job-namespace";
/// Maximum Job name length (a DNS label, as upstream limits it).
pub const MAX_JOB_NAME: usize = 63;

/// Pod waiting reasons that will never resolve on their own.
const TERMINAL_WAITING_REASONS: &[&str] = &["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];

/// The AnalysisRun a Job belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRef<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub uid: &'a str,
}

/// Which attempt this measurement is for this metric (upstream `getJobIDSuffix`).
pub fn job_attempt(counts: Option<&MetricCounts>) -> i32 {
    counts.map_or(1, |c| c.count + c.error + 1)
}

/// `<uid>.<metric>.<attempt>`, with the metric name shortened to fit 63 characters.
pub fn job_name(run_uid: &str, metric: &str, attempt: i32) -> String {
    let full = format!("{run_uid}.{metric}.{attempt}");
    if full.len() <= MAX_JOB_NAME {
        return full;
    }
    let over = full.len() - MAX_JOB_NAME;
    let mut keep = metric.len().saturating_sub(over);
    while !metric.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{run_uid}.{}.{attempt}", &metric[..keep])
}

/// Builds the Job for one measurement. `job_namespace` overrides the run's namespace (upstream's
/// `--analysis-job-namespace`); the owner reference is then omitted, as it cannot cross
/// namespaces.
pub fn build_job(
    run: RunRef<'_>,
    metric_name: &str,
    metric: &JobMetric,
    attempt: i32,
    job_namespace: Option<&str>,
) -> Job {
    let namespace = job_namespace
        .filter(|n| !n.is_empty())
        .unwrap_or(run.namespace);
    let meta = metric.metadata.clone().unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(ANALYSIS_RUN_UID_LABEL.to_string(), run.uid.to_string());
    let mut annotations = meta.annotations.unwrap_or_default();
    annotations.insert(
        ANALYSIS_RUN_NAME_ANNOTATION.to_string(),
        run.name.to_string(),
    );
    annotations.insert(
        ANALYSIS_RUN_NAMESPACE_ANNOTATION.to_string(),
        run.namespace.to_string(),
    );
    annotations.insert(
        ANALYSIS_RUN_METRIC_ANNOTATION.to_string(),
        metric_name.to_string(),
    );
    let mut spec = metric.spec.clone();
    let pod_meta = spec
        .template
        .metadata
        .get_or_insert_with(ObjectMeta::default);
    pod_meta
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(ANALYSIS_RUN_UID_LABEL.to_string(), run.uid.to_string());
    let owner_references = (namespace == run.namespace).then(|| {
        vec![OwnerReference {
            api_version: "argoproj.io/v1alpha1".to_string(),
            kind: "AnalysisRun".to_string(),
            name: run.name.to_string(),
            uid: run.uid.to_string(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]
    });
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(run.uid, metric_name, attempt)),
            namespace: Some(namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// The measurement metadata recording which Job it runs.
pub fn measurement_metadata(job: &Job) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            JOB_NAME_KEY.to_string(),
            job.metadata.name.clone().unwrap_or_default(),
        ),
        (
            JOB_NAMESPACE_KEY.to_string(),
            job.metadata.namespace.clone().unwrap_or_default(),
        ),
    ])
}

/// `(namespace, name)` of the Job a measurement runs, from its metadata.
pub fn job_reference(
    metadata: &BTreeMap<String, String>,
    run_namespace: &str,
) -> Result<(String, String), String> {
    let name = metadata
        .get(JOB_NAME_KEY)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| "job metadata reference missing".to_string())?;
    let namespace = metadata
        .get(JOB_NAMESPACE_KEY)
        .filter(|n| !n.is_empty())
        .map_or(run_namespace, String::as_str);
    Ok((namespace.to_string(), name.clone()))
}

/// Where a job measurement stands.
#[derive(Debug, Clone, PartialEq)]
pub enum JobProgress {
    /// The measurement is finished with this phase (and message, for Inconclusive).
    Finished {
        phase: Phase,
        message: Option<String>,
    },
    /// Still running; look again at `resume_at`.
    Running { resume_at: DateTime<Utc> },
}

/// Maps the Job's conditions and its pods' container states to the measurement.
pub fn assess_job(
    job: &Job,
    pods: &[Pod],
    measurement_started_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> JobProgress {
    let conditions = job
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    for c in conditions {
        if c.status != "True" {
            continue;
        }
        let phase = match c.type_.as_str() {
            "Complete" => Phase::Successful,
            "Failed" => Phase::Failed,
            _ => continue,
        };
        return JobProgress::Finished {
            phase,
            message: None,
        };
    }
    if let Some(message) = terminal_pod_error(pods) {
        return JobProgress::Finished {
            phase: Phase::Inconclusive,
            message: Some(message),
        };
    }
    let elapsed = (now - measurement_started_at).num_milliseconds().max(0) as f64 / 1000.0;
    let delay = Duration::milliseconds(((2.0 * elapsed).sqrt() * 1000.0) as i64);
    JobProgress::Running {
        resume_at: now + delay,
    }
}

fn terminal_pod_error(pods: &[Pod]) -> Option<String> {
    for pod in pods {
        let Some(status) = &pod.status else { continue };
        let statuses = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        for cs in statuses {
            let Some(waiting) = cs.state.as_ref().and_then(|s| s.waiting.as_ref()) else {
                continue;
            };
            let reason = waiting.reason.as_deref().unwrap_or_default();
            if TERMINAL_WAITING_REASONS.contains(&reason) {
                return Some(format!(
                    "Pod {}, container {} has terminal error ({reason}): {}",
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    cs.name,
                    waiting.message.as_deref().unwrap_or_default()
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn metric() -> JobMetric {
        serde_json::from_value(json!({
            "metadata": {"labels": {"team": "a"}, "annotations": {"note": "x"}},
            "spec": {
                "backoffLimit": 1,
                "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "check", "image": "busybox"}]}}
            }
        }))
        .unwrap()
    }

    const RUN: RunRef<'static> = RunRef {
        name: "web-abc-1-2",
        namespace: "prod",
        uid: "1c1f4f8e-2b9f-4d5e-9f0a-1234567890ab",
    };

    #[test]
    fn job_carries_upstream_name_labels_annotations_and_owner() {
        let job = build_job(RUN, "smoke", &metric(), 2, None);
        let got = serde_json::to_value(&job).unwrap();
        assert_eq!(
            got["metadata"],
            json!({
                "name": "1c1f4f8e-2b9f-4d5e-9f0a-1234567890ab.smoke.2",
                "namespace": "prod",
                "labels": {"team": "a", "analysisrun.argoproj.io/uid": RUN.uid},
                "annotations": {
                    "note": "x",
                    "analysisrun.argoproj.io/name": "web-abc-1-2",
                    "analysisrun.argoproj.io/namespace": "prod",
                    "analysisrun.argoproj.io/metric-name": "smoke"
                },
                "ownerReferences": [{
                    "apiVersion": "argoproj.io/v1alpha1", "kind": "AnalysisRun",
                    "name": "web-abc-1-2", "uid": RUN.uid,
                    "controller": true, "blockOwnerDeletion": true
                }]
            })
        );
        assert_eq!(
            got["spec"]["template"]["metadata"]["labels"],
            json!({"analysisrun.argoproj.io/uid": RUN.uid})
        );
        assert_eq!(got["spec"]["backoffLimit"], 1);
        assert_eq!(
            measurement_metadata(&job),
            BTreeMap::from([
                (
                    "job-name".to_string(),
                    "1c1f4f8e-2b9f-4d5e-9f0a-1234567890ab.smoke.2".to_string()
                ),
                ("job-namespace".to_string(), "prod".to_string()),
            ])
        );
    }

    #[test]
    fn job_in_another_namespace_has_no_owner_reference() {
        let job = build_job(RUN, "smoke", &metric(), 1, Some("jobs"));
        assert_eq!(job.metadata.namespace.as_deref(), Some("jobs"));
        assert!(job.metadata.owner_references.is_none());
        assert_eq!(
            job_reference(&measurement_metadata(&job), "prod"),
            Ok(("jobs".to_string(), job.metadata.name.clone().unwrap()))
        );
        assert!(job_reference(&BTreeMap::new(), "prod").is_err());
    }

    #[test]
    fn long_metric_names_are_shortened_to_63_characters() {
        let name = job_name(RUN.uid, &"m".repeat(40), 12);
        assert_eq!(name.len(), 63);
        assert!(name.ends_with(".12"));
        assert_eq!(job_attempt(None), 1);
        let c = MetricCounts {
            count: 3,
            error: 2,
            ..MetricCounts::default()
        };
        assert_eq!(job_attempt(Some(&c)), 6);
    }

    fn job_with(conditions: serde_json::Value) -> Job {
        serde_json::from_value(json!({"status": {"conditions": conditions}})).unwrap()
    }

    #[test]
    fn job_status_maps_to_measurement_phase() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let now = start + Duration::seconds(50);
        let done = job_with(json!([{"type": "Complete", "status": "True"}]));
        assert_eq!(
            assess_job(&done, &[], start, now),
            JobProgress::Finished {
                phase: Phase::Successful,
                message: None
            }
        );
        let failed = job_with(json!([{"type": "Failed", "status": "True"}]));
        assert_eq!(
            assess_job(&failed, &[], start, now),
            JobProgress::Finished {
                phase: Phase::Failed,
                message: None
            }
        );
        let running = job_with(json!([]));
        assert_eq!(
            assess_job(&running, &[], start, now),
            JobProgress::Running {
                resume_at: now + Duration::seconds(10)
            }
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p1"},
            "status": {"containerStatuses": [{
                "name": "check", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "not found"}}
            }]}
        }))
        .unwrap();
        assert_eq!(
            assess_job(&running, &[pod], start, now),
            JobProgress::Finished {
                phase: Phase::Inconclusive,
                message: Some(
                    "Pod p1, container check has terminal error (ImagePullBackOff): not found"
                        .to_string()
                )
            }
        );
    }
}
