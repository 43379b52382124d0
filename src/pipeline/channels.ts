// diagnostics_channel events the HTTP pipeline publishes at its stage boundaries (for embedders, the metrics in
// src/observability/http-stats.ts, tracers). Publishing costs one `hasSubscribers` test when nobody listens.
// Messages are the pipeline's Transaction (src/pipeline/transaction.ts): read it, never keep or change it.
import diagnostics_channel from 'node:diagnostics_channel';

/** A request entered the pipeline (headers parsed, before routing). */
export const HTTP_REQUEST_START = 'switchyard:http:request:start';
/** The exchange ended (answered, failed or abandoned by the client); published after the log phase. */
export const HTTP_REQUEST_END = 'switchyard:http:request:end';

export const requestStart = diagnostics_channel.channel(HTTP_REQUEST_START);
export const requestEnd = diagnostics_channel.channel(HTTP_REQUEST_END);
