#pragma once

#include <string>

#include "coordinator/profile_facts_cache.hpp"
#include "coordinator/registry.hpp"
#include "coordinator/usage.hpp"

namespace coordinator {

// The /ready and /health body: fleet summary plus one entry per child.
// `extra` fields (e.g. the profile queue) are merged in.
// With `usage`, each child shows today's requests and tokens (UTC day); with
// `profiles`, each spawned child its first cookie expiry (`cookies_expire_at`)
// and `expiring_soon` within --expiry-warning.
std::string readiness_body(const Registry& registry, Clock::time_point now, const std::string& extra_json = {},
                           const UsageBook* usage = nullptr, const ProfileFactsCache* profiles = nullptr);

// The children as JSON, as in /ready's `children` and GET /admin/children.
std::string children_json(const Registry& registry, Clock::time_point now, const UsageBook* usage = nullptr,
                          const ProfileFactsCache* profiles = nullptr);

// GET /admin/profiles: per profile its name, state, file time, cookie count and
// earliest cookie expiry (`expiring_soon` within `expiry_warning`); never a
// cookie's name or value. From the cache: no file is read on the request path.
std::string profiles_json(const Registry& registry, const ProfileFactsCache& cache);

}  // namespace coordinator
