#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "coordinator/child.hpp"
#include "coordinator/config.hpp"

namespace coordinator {

// What a child is started with: its argv, its environment, its folders, and
// the checks and warnings before the first start.

using Variables = std::vector<std::pair<std::string, std::string>>;

// The argv a child is started with, interpreter first; `profile` is the file
// given as --active-auth-json (the child's working copy of its profile).
std::vector<std::string> child_command(const Config& config, const std::string& python, const Child& child,
                                       const std::filesystem::path& profile);

// A child's environment ("KEY=VALUE" entries): `inherited` with `overrides`
// replacing or adding variables (a later override of the same key wins).
std::vector<std::string> child_environment(const char* const* inherited, const Variables& overrides);

// What the real child's config/settings.py reads, set out of its way: its
// own account rotation off (the coordinator decides which account runs
// where), its token limits out of reach (with rotation off, the soft limit
// makes its worker loop forever and the hard limit fakes a quota error), and
// no wait for a login typed at a terminal nobody watches. A switch the
// coordinator's environment `inherited` sets already is left to it (the
// operator's word; prepare() warns).
Variables child_variables(const char* const* inherited);
inline constexpr std::string_view kOutOfReachTokens = "1000000000000000000";

// The overrides of one start of a child, in the order child_environment
// applies them: child_variables, then `from_env_file` (the profile's own
// {name}.env), then the ports the child's /api/ports/kill takes for its own,
// and the tree marker last (it must be exact).
Variables launch_variables(const char* const* inherited, const Variables& from_env_file, const ChildPorts& ports,
                           std::string_view tree);

// The variables of the profile's own {name}.env, if it has one (its errors,
// and switches it sets against the coordinator's, are logged; values never).
Variables read_profile_env(const Child& child);

// Warns about the variables of the coordinator's own environment that every
// child inherits and that work against the coordinator (see child_variables).
void warn_about_inherited_variables();

// The real child checks /v1/* against its own key.txt (api_utils/auth_utils.py)
// when that file has a key: a request the coordinator accepted could get a 401.
void warn_if_children_check_keys(const std::filesystem::path& key_file);

// The interpreter's absolute path (searched on PATH when `python` has no '/');
// empty, with a one-line reason in `error`, when it is not usable.
std::string resolve_interpreter(const std::string& python, std::string& error);

// Where this run's working copies of the profiles go: {runtime-dir}/{fleet}.
std::filesystem::path working_copies_folder(const Config& config, std::string_view fleet);

// Makes {runtime-dir} (0700 when new) and this run's working-copies folder
// (0700), and removes the folders of earlier runs whose coordinator is gone.
// Returns a one-line error, or "".
std::string prepare_working_copies_folder(const Config& config, const std::string& fleet);

// A child's own working folder, kept across its restarts: {runtime-dir}/children/{name}.
std::filesystem::path child_work_dir(const Config& config, std::string_view name);

// A folder only the coordinator's user can enter (created if missing); returns an error or "".
std::string make_private_dir(const std::filesystem::path& folder);

}  // namespace coordinator
