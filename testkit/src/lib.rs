//! Test support for testlayer: a real control plane and a scripted test kubelet.
