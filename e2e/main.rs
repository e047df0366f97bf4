//! End-to-end scenarios: the embedded cluster, the controller and the real `kubectl`.
