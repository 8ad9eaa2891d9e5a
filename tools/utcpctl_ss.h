// utcpctl_ss.h - `utcpctl ss`: utcp's connections as ss(8) shows the kernel's.
#pragma once

#include <string>
#include <vector>

// args[0] is "ss". Returns the process exit status.
int utcpctl_ss(const std::vector<std::string>& args);
