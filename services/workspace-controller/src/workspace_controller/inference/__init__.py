"""The inference path: parameters ConfigMap, Services, the workload and its readiness."""
