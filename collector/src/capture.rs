//! Streaming capture reader: pcap (µs/ns, both byte orders), pcapng and gzip.
//!
//! (Being written: see the module contract in the lib docs.)
