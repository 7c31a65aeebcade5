//! The ConfigMap that keeps an attempt's test cases once its Pod is gone.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::ObjectMeta;
use kube::{Resource, ResourceExt};

use crate::api::CategoryRun;
use crate::api::names::LABEL_ATTEMPT;
use crate::api::names::{CASES_KEY, LABEL_TEST_CASES};
use crate::controller::run::build::pod_name;
use crate::controller::run::step::CaseList;

/// The name of the ConfigMap of attempt `attempt` of a CategoryRun.
pub fn test_cases_name(category_run: &str, attempt: u32) -> String {
    format!("{}-tests", pod_name(category_run, attempt))
}

/// The ConfigMap holding `list`, the test cases of attempt `attempt` of
/// `cr`, labelled as its Pod is and owned by `cr` (it goes with it).
pub fn test_cases_config_map(cr: &CategoryRun, attempt: u32, list: &CaseList) -> ConfigMap {
    let mut labels = cr.labels().clone();
    labels.insert(LABEL_ATTEMPT.into(), attempt.to_string());
    labels.insert(LABEL_TEST_CASES.into(), "true".into());
    let mut data = BTreeMap::from([("cases".to_string(), list.count.to_string())]);
    if list.left_out > 0 {
        data.insert("leftOut".into(), list.left_out.to_string());
    }
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(test_cases_name(&cr.name_any(), attempt)),
            namespace: cr.namespace(),
            labels: Some(labels),
            owner_references: cr.controller_owner_ref(&()).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        binary_data: Some(BTreeMap::from([(
            CASES_KEY.to_string(),
            ByteString(list.bytes.as_ref().clone()),
        )])),
        immutable: Some(true),
    }
}
