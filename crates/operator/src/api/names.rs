//! Every name the operator gives to what it writes: labels, annotations,
//! finalizers, container names and data keys. One place, so that the
//! controller, the command line and the tests agree.

// Labels and their values.

/// Standard label of what manages an object.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGER: &str = "testlayer";
/// Label naming the TestLayerRun an object belongs to.
pub const LABEL_RUN: &str = "testlayer.dev/run";
/// Label naming the layer key (as a DNS label).
pub const LABEL_LAYER: &str = "testlayer.dev/layer";
/// Label naming the category (as a DNS label).
pub const LABEL_CATEGORY: &str = "testlayer.dev/category";
/// Label with the attempt number of a Pod.
pub const LABEL_ATTEMPT: &str = "testlayer.dev/attempt";
/// Label of the runs of one suite (`testlayer submit --all`): their layer
/// dependencies are on each other, not on the latest run of a layer.
pub const LABEL_SUITE: &str = "testlayer.dev/suite";
/// Annotation of a suite's runs: the layer keys the suite runs,
/// comma-separated (a dependency on another layer is not waited for).
pub const ANNOTATION_SUITE_LAYERS: &str = "testlayer.dev/suite-layers";

// Schedules and triggers.

/// Label of the runs a schedule created: its name.
pub const LABEL_SCHEDULE: &str = "testlayer.dev/schedule";
/// Label of the runs a trigger created: its name.
pub const LABEL_TRIGGER: &str = "testlayer.dev/trigger";
/// Annotation of a created run: the tick (or firing) it belongs to, RFC 3339.
pub const ANNOTATION_SCHEDULED_AT: &str = "testlayer.dev/scheduled-at";
/// Annotation of a triggered run: the resource, `Kind/name`.
pub const ANNOTATION_TRIGGERED_BY: &str = "testlayer.dev/triggered-by";
/// Annotation of a triggered run: the revision.
pub const ANNOTATION_REVISION: &str = "testlayer.dev/revision";
/// Annotation of a triggered run: the resource's first container image.
pub const ANNOTATION_IMAGE: &str = "testlayer.dev/image";

/// Annotation of an attempt's Pod that the controller stopped without
/// deleting it (its `activeDeadlineSeconds` cut short, so the kubelet stops
/// its container and the Pod, with its log, stays until the run is
/// deleted): when, RFC 3339.
pub const ANNOTATION_STOPPED_AT: &str = "testlayer.dev/stopped-at";

// Kueue.

/// Label naming the Kueue `LocalQueue` of a Pod (`pod.queueName`).
pub const LABEL_KUEUE_QUEUE: &str = "kueue.x-k8s.io/queue-name";

// Test-case records.

/// Label on every such ConfigMap.
pub const LABEL_TEST_CASES: &str = "testlayer.dev/test-cases";
/// Key of the compressed list in the ConfigMap's `binaryData`.
pub const CASES_KEY: &str = "cases.jsonl.gz";

// Grants of shared resources.

/// Label of a grant: the resource.
pub const LABEL_RESOURCE: &str = "testlayer.dev/resource";
/// Label of a grant: the name of its holder.
pub const LABEL_HOLDER: &str = "testlayer.dev/holder";
/// Label of a grant: the attempt it is for (0: the whole run).
pub const LABEL_GRANT_ATTEMPT: &str = "testlayer.dev/grant-attempt";
/// Label of a grant: the uid of its holder (a grant in another namespace
/// than its holder's has no owner reference).
pub const LABEL_HOLDER_UID: &str = "testlayer.dev/holder-uid";
/// Label of a grant: the namespace of its holder.
pub const LABEL_HOLDER_NAMESPACE: &str = "testlayer.dev/holder-namespace";
/// The finalizer of grants made by earlier versions, which were owned by
/// their holder: one the garbage collector deleted with its holder keeps
/// its unit until the holder's Pods have stopped running, and only then
/// goes (see `release_when_stopped` in the controller). Grants made now
/// have neither owner nor finalizer.
pub const GRANT_FINALIZER: &str = "testlayer.dev/holder-stopped";

// Pods, ConfigMaps and frozen plans.

/// Name of the test container in every Pod.
pub const CONTAINER: &str = "test";
/// Key of the layer config in a ConfigMap when the reference names none.
pub const DEFAULT_CONFIG_KEY: &str = "test_layers.yaml";
/// Key of the format version in the ConfigMap's `data`.
pub const FORMAT_KEY: &str = "format";
/// The format this controller writes and reads.
pub const FORMAT: &str = "testlayer.dev/frozen-plan/v1";
/// Key of the compressed plan in the ConfigMap's `binaryData`.
pub const PLAN_KEY: &str = "plan.json.gz";
