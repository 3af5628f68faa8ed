#include <gtest/gtest.h>

#include <set>
#include <vector>

#include "coordinator/relay.hpp"

using namespace coordinator;

TEST(RelayBufferPool, GivenBuffersAreTakenAgain) {
  RelayBufferPool pool;
  auto first = pool.take();
  ASSERT_NE(first, nullptr);
  RelayBuffers* const address = first.get();
  first->upstream_read.commit(net::buffer_copy(first->upstream_read.prepare(5), net::buffer("hello", 5)));
  pool.give(std::move(first));
  EXPECT_EQ(pool.spare(), 1u);
  auto again = pool.take();
  EXPECT_EQ(again.get(), address);
  EXPECT_EQ(again->upstream_read.size(), 0u) << "a reused buffer must hold no bytes of the last answer";
  EXPECT_EQ(pool.spare(), 0u);
}

TEST(RelayBufferPool, KeepsAsManyAsWereInUseUpToTheCap) {
  RelayBufferPool pool;
  std::vector<std::unique_ptr<RelayBuffers>> in_use;
  for (std::size_t i = 0; i < RelayBufferPool::kMaxSpare + 10; ++i) in_use.push_back(pool.take());
  std::set<RelayBuffers*> distinct;
  for (const auto& buffers : in_use) distinct.insert(buffers.get());
  EXPECT_EQ(distinct.size(), in_use.size());
  for (auto& buffers : in_use) pool.give(std::move(buffers));
  EXPECT_EQ(pool.spare(), RelayBufferPool::kMaxSpare);
  pool.give(nullptr);
  EXPECT_EQ(pool.spare(), RelayBufferPool::kMaxSpare);
}

TEST(RelayBufferPool, AGrownReadBufferIsShrunkBeforeItIsKept) {
  RelayBufferPool pool;
  auto buffers = pool.take();
  buffers->upstream_read.reserve(RelayBuffers::kBytes);
  const auto normal = buffers->upstream_read.capacity();
  pool.give(std::move(buffers));
  EXPECT_EQ(pool.take()->upstream_read.capacity(), normal) << "a normal read buffer is kept as it is";

  buffers = pool.take();
  buffers->upstream_read.reserve(64 * RelayBuffers::kBytes);
  pool.give(std::move(buffers));
  EXPECT_LE(pool.take()->upstream_read.capacity(), 4 * RelayBuffers::kBytes);
}
