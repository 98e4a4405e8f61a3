//! CONNECT tunnels: the bidirectional byte relay (splice through a pooled pipe on Linux, a
//! pooled-buffer copy otherwise) with half-close, idle timeout and per-direction byte counters.
//! It moves bytes and knows nothing of HTTP. Not built yet: it arrives with the CONNECT issue;
//! until then the proxy answers CONNECT with 501.
