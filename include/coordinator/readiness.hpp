#pragma once

#include <string>

#include "coordinator/registry.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

// The /ready and /health body: fleet summary plus one entry per child.
// `extra` fields (e.g. the profile queue) are merged in.
// With `usage`, each child shows today's requests and tokens (UTC day).
std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json = {},
                           const UsageBook* usage = nullptr);

// The children as JSON, as in /ready's `children` and GET /admin/children.
std::string children_json(const Registry& registry, Clock::time_point now, const UsageBook* usage = nullptr);

// GET /admin/profiles: per profile its name, state, file time, cookie count and
// earliest cookie expiry (`expiring_soon` within `expiry_warning`); never a
// cookie's name or value. Reads the (small) profile files.
std::string profiles_json(const Registry& registry, Clock::duration expiry_warning);

}  // namespace coordinator
