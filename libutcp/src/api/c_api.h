// c_api.h - the C API's stack handle (utcp.h) seen from C++ inside the tree: tests look at
// the Stack behind it (statistics the C API does not show). Not exported from libutcp.so.
#pragma once

#include "api/stack.h"
#include "utcp/utcp.h"

namespace utcp::api {

// The Stack behind a handle of utcp_stack_create or utcp_raw_create; nullptr for null.
Stack* stack_of(utcp_stack* s);

}  // namespace utcp::api
