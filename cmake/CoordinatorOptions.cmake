# Project-wide compiler settings and the sanitizer switch.
set(CMAKE_CXX_STANDARD 20)
set(CMAKE_CXX_STANDARD_REQUIRED ON)
set(CMAKE_CXX_EXTENSIONS OFF)
set(CMAKE_EXPORT_COMPILE_COMMANDS ON)

if(NOT CMAKE_BUILD_TYPE AND NOT CMAKE_CONFIGURATION_TYPES)
  set(CMAKE_BUILD_TYPE RelWithDebInfo CACHE STRING "Build type" FORCE)
endif()

option(COORDINATOR_FUZZ "Build the libFuzzer targets in tests/fuzz (clang only; see tests/fuzz/run.sh)" OFF)
option(COORDINATOR_SANITIZE "Build with AddressSanitizer and UndefinedBehaviorSanitizer" OFF)

add_library(coordinator_warnings INTERFACE)
# Two known g++ 12 false positives are off: Asio's coroutine frame allocator
# (its own operator new/delete pair) reported as mismatched, and -Wrestrict on
# "literal" + std::string at -O3 (GCC bug 105651).
target_compile_options(coordinator_warnings INTERFACE -Wall -Wextra -Werror -Wno-mismatched-new-delete
                                                      $<$<CXX_COMPILER_ID:GNU>:-Wno-restrict>)

if(COORDINATOR_SANITIZE)
  # Every report is fatal, so a sanitizer finding fails the test that triggered it.
  set(sanitize_flags -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_compile_options(${sanitize_flags})
  add_link_options(${sanitize_flags})
  # Asio keeps freed coroutine frames for reuse, which hides a frame used after
  # its coroutine ended from AddressSanitizer: every frame comes from malloc here.
  add_compile_definitions(BOOST_ASIO_DISABLE_AWAITABLE_FRAME_RECYCLING)
endif()
