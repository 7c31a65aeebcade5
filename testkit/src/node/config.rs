//! The configuration files of a real node: containerd's, the kubelet's and
//! the CNI network's, as plain text from a [`Layout`]. No I/O here.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Where one node's files, addresses and cgroups are. Each node slot `n`
/// gets its own of everything, so two nodes on one machine never share a
/// bridge, an address range or a cgroup tree.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The slot number.
    pub slot: u8,
    /// The node's directory (containerd's root and state, the kubelet's
    /// root, logs).
    pub dir: PathBuf,
    /// The Node's name.
    pub node_name: String,
}

impl Layout {
    /// The layout of slot `slot` under `base`.
    pub fn new(base: &Path, slot: u8) -> Layout {
        Layout {
            slot,
            dir: base.join(slot.to_string()),
            node_name: if slot == 0 {
                "testlayer-node".into()
            } else {
                format!("testlayer-node-{slot}")
            },
        }
    }

    /// The node's address, on its own bridge (the kubelet refuses loopback).
    pub fn node_ip(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 213, self.slot, 1)
    }

    /// The bridge that carries the node's address.
    pub fn node_bridge(&self) -> String {
        format!("tlnode{}", self.slot)
    }

    /// The bridge the Pods are attached to.
    pub fn pod_bridge(&self) -> String {
        format!("tlpods{}", self.slot)
    }

    /// The Pods' address range.
    pub fn pod_subnet(&self) -> String {
        format!("10.214.{}.0/24", self.slot)
    }

    /// The kubelet's cgroup root, in every cgroup hierarchy.
    pub fn cgroup_root(&self) -> String {
        format!("/testlayer-node-{}", self.slot)
    }

    /// containerd's socket.
    pub fn containerd_socket(&self) -> PathBuf {
        self.dir.join("containerd/containerd.sock")
    }

    /// runc's state directory (its containers' records).
    pub fn runc_root(&self) -> PathBuf {
        self.dir.join("runc")
    }

    /// The containerd config file.
    pub fn containerd_config(&self) -> PathBuf {
        self.dir.join("containerd/config.toml")
    }

    /// The CNI config directory.
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("cni/net.d")
    }

    /// The kubelet config file.
    pub fn kubelet_config(&self) -> PathBuf {
        self.dir.join("kubelet/config.yaml")
    }

    /// The kubelet's root directory (Pod volumes).
    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.join("kubelet/root")
    }

    /// Where the kubelet keeps container logs.
    pub fn pod_logs(&self) -> PathBuf {
        self.dir.join("pod-logs")
    }
}

/// Names of the images every node has: the sandbox image is pinned in
/// containerd's config.
pub const PAUSE_IMAGE: &str = "localhost/testlayer/pause:1";

/// containerd's config (version 3, containerd 2.x): its own root, state,
/// socket and runc root under the node's directory, cgroupfs, the CNI
/// plugins from Debian, and the sandbox image pinned to the one the node
/// imports.
///
/// `restrict_oom_score_adj`: the kubelet asks for oom_score_adj -998 for
/// sandboxes and -997 for Guaranteed Pods; lowering it needs
/// CAP_SYS_RESOURCE, which a sandboxed root may lack (runc then fails with
/// "can't get final child's PID from pipe"). Restricted, containerd never
/// asks for less than its own score.
pub fn containerd_toml(l: &Layout) -> String {
    let d = l.dir.display();
    format!(
        r#"version = 3
root = "{d}/containerd/root"
state = "{d}/containerd/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{sock}"

[ttrpc]
  address = "{sock}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = "{pause}"

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "{runc}"
        Root = "{runc_root}"
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "{cni}"
"#,
        sock = l.containerd_socket().display(),
        pause = PAUSE_IMAGE,
        runc = "/usr/sbin/runc",
        runc_root = l.runc_root().display(),
        cni = l.cni_conf_dir().display(),
    )
}

/// The `kubernetes` Service's cluster IP: the first address of the control
/// plane's `--service-cluster-ip-range` (10.0.0.0/24).
pub const SERVICE_IP: &str = "10.0.0.1";
/// The `kubernetes` Service's port.
pub const SERVICE_PORT: u16 = 443;

/// The CNI network: a bridge with host-local addresses and no masquerading.
/// Pods reach each other, the node, and the apiserver through the
/// `kubernetes` Service (see `api_route`), nothing else.
pub fn cni_conflist(l: &Layout) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "testlayer",
        "plugins": [{
            "type": "bridge",
            "bridge": l.pod_bridge(),
            "isGateway": true,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": l.pod_subnet()}]],
                // Through the bridge's gateway (this machine): the node's
                // address, and the `kubernetes` Service's cluster IP (see
                // `api_route`). No default route: what no rule here
                // handles is unreachable at once, never sent on.
                "routes": [
                    {"dst": format!("{}/32", l.node_ip())},
                    {"dst": format!("{}/32", SERVICE_IP)},
                ],
                "dataDir": l.dir.join("cni/ipam").display().to_string(),
            }
        }]
    })
    .to_string()
}

/// The kubelet's config: cgroup v1 with the cgroupfs driver, its own cgroup
/// root, client certificates checked against the cluster CA and requests
/// authorized by the apiserver, no eviction and no image garbage collection
/// (imported images must stay), and no cluster DNS (there is none).
pub fn kubelet_yaml(l: &Layout, ca_cert: &Path) -> String {
    format!(
        r#"apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: {cgroup_root}
failSwapOn: false
containerRuntimeEndpoint: unix://{sock}
address: {ip}
port: 10250
readOnlyPort: 0
healthzBindAddress: {ip}
healthzPort: 10248
podLogsDir: {logs}
authentication:
  anonymous: {{enabled: false}}
  webhook: {{enabled: true}}
  x509: {{clientCAFile: {ca}}}
authorization:
  mode: Webhook
evictionHard:
  memory.available: "0%"
  nodefs.available: "0%"
  nodefs.inodesFree: "0%"
  imagefs.available: "0%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
resolvConf: ""
serializeImagePulls: false
registerNode: true
syncFrequency: 10s
fileCheckFrequency: 60s
nodeStatusReportFrequency: 1m
"#,
        cgroup_root = l.cgroup_root(),
        sock = l.containerd_socket().display(),
        ip = l.node_ip(),
        logs = l.pod_logs().display(),
        ca = ca_cert.display(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_share_nothing() {
        let a = Layout::new(Path::new("/tmp/n"), 0);
        let b = Layout::new(Path::new("/tmp/n"), 1);
        assert_ne!(a.node_ip(), b.node_ip());
        assert_ne!(a.pod_subnet(), b.pod_subnet());
        assert_ne!(a.pod_bridge(), b.pod_bridge());
        assert_ne!(a.cgroup_root(), b.cgroup_root());
        assert_ne!(a.containerd_socket(), b.containerd_socket());
        assert!(a.pod_bridge().len() <= 15, "interface names hold 15 bytes");
        // A unix socket path holds 107 bytes.
        assert!(a.containerd_socket().as_os_str().len() < 100);
    }

    #[test]
    fn configs_name_the_node_s_own_paths() {
        let l = Layout::new(Path::new("/tmp/n"), 3);
        let c = containerd_toml(&l);
        assert!(c.contains(r#"address = "/tmp/n/3/containerd/containerd.sock""#));
        assert!(c.contains(r#"Root = "/tmp/n/3/runc""#));
        assert!(c.contains("restrict_oom_score_adj = true"));
        let k = kubelet_yaml(&l, Path::new("/ca.crt"));
        assert!(k.contains("cgroupRoot: /testlayer-node-3"));
        assert!(k.contains("address: 10.213.3.1"));
        let n: serde_json::Value = serde_json::from_str(&cni_conflist(&l)).unwrap();
        assert_eq!(
            n["plugins"][0]["ipam"]["ranges"][0][0]["subnet"],
            "10.214.3.0/24"
        );
    }
}
