// The APISIX release whose Admin API and behaviour Switchyard targets. Tools (ADC, the ingress controller)
// read it from `Server: APISIX/<version>` to pick their API dialect; Switchyard's own version goes in
// X-Switchyard-Version.
export const APISIX_COMPAT_VERSION = '3.13.0';
