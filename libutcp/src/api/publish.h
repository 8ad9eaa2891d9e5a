// publish.h - what a stack tells observers about its connection (uapi utcp_app_info).
//
// A stack on a module endpoint writes its connection's state into the endpoint's header
// page (UTCP_APP_INFO_OFF), where `utcpctl ss` finds it through utcpd and the module
// (UTCP_IOC_EP_APP_INFO) without asking the application anything: the ss(8) of utcp.
// One connection per endpoint is published — the endpoint's own (the first connection
// that is not a local listener's embryo); the writer follows the uapi seqlock.
#pragma once

#include <linux/utcp.h>

#include "base/time.h"
#include "tcp/connection.h"

namespace utcp {

// Writes `c`'s state at `now` into `dst` (shared memory) under the seqlock; `pid` is the
// publishing process.
void publish_app_info(utcp_app_info* dst, const Connection& c, uint32_t pid, Instant now);

// A stable copy of `src`, or false if a writer was busy in every try or nothing valid
// was published (for readers that map the page themselves, like tests).
bool read_app_info(const utcp_app_info* src, utcp_app_info* out);

// The RFC 9293 name of a utcp_app_info::state value ("ESTABLISHED", ...); "?" if invalid.
const char* app_state_name(uint8_t state);

}  // namespace utcp
