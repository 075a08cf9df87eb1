//! The monitor's Prometheus metrics (names are DESIGN.md's contract).
//!
//! Counters count what was read: IP packets and IP-layer bytes for captures,
//! the records' counters after sampling for exports.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Labels of per-source metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    /// The source's name (`eth1`, `netflow@127.0.0.1:2055`, `watch:/var/spool/zonewatch`).
    pub source: String,
}

/// Labels of per-source, per-reason metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceReasonLabel {
    /// The source's name.
    pub source: String,
    /// Why (`truncated-header`, `queue-full`, ...).
    pub reason: String,
}

/// Labels of findings.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabel {
    /// Finding kind (`public-exposure`, ...).
    pub kind: String,
    /// Severity (`critical`, ...).
    pub severity: String,
}

/// Labels of per-exporter metrics.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ExporterLabel {
    /// The exporter's address.
    pub exporter: String,
}

/// Every metric of a running monitor, in one explicit registry.
pub struct Metrics {
    registry: Registry,
    /// `zonewatch_packets_total{source}`.
    pub packets: Family<SourceLabel, Counter>,
    /// `zonewatch_bytes_total{source}`.
    pub bytes: Family<SourceLabel, Counter>,
    /// `zonewatch_flows_total{source}`.
    pub flows: Family<SourceLabel, Counter>,
    /// `zonewatch_decode_errors_total{source,reason}`.
    pub decode_errors: Family<SourceReasonLabel, Counter>,
    /// `zonewatch_dropped_total{source,reason}`.
    pub dropped: Family<SourceReasonLabel, Counter>,
    /// `zonewatch_findings_total{kind,severity}`: findings raised for the first time.
    pub findings: Family<FindingLabel, Counter>,
    /// `zonewatch_flow_table_flows`: live flows now.
    pub flow_table_flows: Gauge,
    /// `zonewatch_template_cache_entries{exporter}`.
    pub template_cache_entries: Family<ExporterLabel, Gauge>,
    /// `zonewatch_files_ingested_total`.
    pub files_ingested: Counter,
    /// `zonewatch_store_lag_seconds`: age of the oldest data not yet committed.
    pub store_lag_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered (at zero).
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        let packets = Family::<SourceLabel, Counter>::default();
        let bytes = Family::<SourceLabel, Counter>::default();
        let flows = Family::<SourceLabel, Counter>::default();
        let decode_errors = Family::<SourceReasonLabel, Counter>::default();
        let dropped = Family::<SourceReasonLabel, Counter>::default();
        let findings = Family::<FindingLabel, Counter>::default();
        let flow_table_flows = Gauge::default();
        let template_cache_entries = Family::<ExporterLabel, Gauge>::default();
        let files_ingested = Counter::default();
        let store_lag_seconds = Gauge::<f64, AtomicU64>::default();
        // prometheus-client appends `_total` to counters itself.
        registry.register(
            "zonewatch_packets",
            "IP packets read (for exports: packets of the records, after sampling)",
            packets.clone(),
        );
        registry.register(
            "zonewatch_bytes",
            "IP-layer bytes read (for exports: bytes of the records, after sampling)",
            bytes.clone(),
        );
        registry.register("zonewatch_flows", "Flows ended", flows.clone());
        registry.register(
            "zonewatch_decode_errors",
            "Packets, datagrams or records that could not be decoded, by reason",
            decode_errors.clone(),
        );
        registry.register(
            "zonewatch_dropped",
            "Input dropped before decoding (queue full, kernel drops, exporter not allowed)",
            dropped.clone(),
        );
        registry.register(
            "zonewatch_findings",
            "Findings raised for the first time",
            findings.clone(),
        );
        registry.register(
            "zonewatch_flow_table_flows",
            "Live flows in the flow table",
            flow_table_flows.clone(),
        );
        registry.register(
            "zonewatch_template_cache_entries",
            "NetFlow v9 / IPFIX templates cached per exporter",
            template_cache_entries.clone(),
        );
        registry.register(
            "zonewatch_files_ingested",
            "Watched files ingested",
            files_ingested.clone(),
        );
        registry.register(
            "zonewatch_store_lag_seconds",
            "Age of the oldest flow data not yet committed to the store",
            store_lag_seconds.clone(),
        );
        Metrics {
            registry,
            packets,
            bytes,
            flows,
            decode_errors,
            dropped,
            findings,
            flow_table_flows,
            template_cache_entries,
            files_ingested,
            store_lag_seconds,
        }
    }

    /// The text exposition (OpenMetrics, which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Labels for a source.
    pub fn source(name: &str) -> SourceLabel {
        SourceLabel {
            source: name.to_string(),
        }
    }

    /// Labels for a source and a reason.
    pub fn reason(source: &str, reason: &str) -> SourceReasonLabel {
        SourceReasonLabel {
            source: source.to_string(),
            reason: reason.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_contract_name_is_exposed() {
        let m = Metrics::new();
        m.packets.get_or_create(&Metrics::source("lo")).inc_by(3);
        m.decode_errors
            .get_or_create(&Metrics::reason("lo", "truncated-ip"))
            .inc();
        m.findings
            .get_or_create(&FindingLabel {
                kind: "egress".into(),
                severity: "high".into(),
            })
            .inc();
        m.store_lag_seconds.set(1.5);
        let text = m.encode();
        assert!(
            text.contains("zonewatch_packets_total{source=\"lo\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("zonewatch_decode_errors_total{source=\"lo\",reason=\"truncated-ip\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("zonewatch_findings_total{kind=\"egress\",severity=\"high\"} 1"),
            "{text}"
        );
        assert!(text.contains("zonewatch_store_lag_seconds 1.5"), "{text}");
        // Families appear once they have a sample; plain metrics always.
        m.bytes.get_or_create(&Metrics::source("lo")).inc();
        m.flows.get_or_create(&Metrics::source("lo")).inc();
        m.dropped
            .get_or_create(&Metrics::reason("lo", "kernel"))
            .inc();
        m.template_cache_entries
            .get_or_create(&ExporterLabel {
                exporter: "127.0.0.1".into(),
            })
            .set(2);
        let text = m.encode();
        for name in [
            "zonewatch_bytes",
            "zonewatch_flows",
            "zonewatch_dropped",
            "zonewatch_flow_table_flows",
            "zonewatch_template_cache_entries",
            "zonewatch_files_ingested",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} missing: {text}"
            );
        }
    }
}
