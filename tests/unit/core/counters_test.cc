#include "core/counters.h"

#include <gtest/gtest.h>

#include <thread>

#include "core/json.h"

namespace medic {
namespace {

TEST(Counters, OneNameAndLabelsIsOneCounterAndOtherLabelsAreAnother) {
  CounterRegistry r;
  Counter& a = r.counter("frames_rejected_total", {{"socket", "events"}, {"cause", "replayed"}});
  Counter& b = r.counter("frames_rejected_total", {{"socket", "events"}, {"cause", "replayed"}});
  Counter& c = r.counter("frames_rejected_total", {{"socket", "control"}, {"cause", "replayed"}});
  EXPECT_EQ(&a, &b);
  EXPECT_NE(&a, &c);
  a.add();
  b.add(2);
  EXPECT_EQ(r.value("frames_rejected_total", {{"socket", "events"}, {"cause", "replayed"}}), 3u);
  EXPECT_EQ(r.value("frames_rejected_total", {{"socket", "control"}, {"cause", "replayed"}}), 0u);
  EXPECT_EQ(r.value("no_such_total"), 0u);
}

TEST(Counters, ObservedCountsAreReadWhenTheRegistryIsRead) {
  CounterRegistry r;
  uint64_t field = 4;
  r.observe("events_total", {}, [&] { return field; }, "events ingested");
  EXPECT_EQ(r.value("events_total"), 4u);
  field = 9;
  auto samples = r.samples();
  ASSERT_EQ(samples.size(), 1u);
  EXPECT_EQ(samples[0].value, 9u);
  EXPECT_EQ(samples[0].help, "events ingested");
}

TEST(Counters, SamplesAndJsonAreSortedByNameThenLabels) {
  CounterRegistry r;
  r.counter("b_total", {{"cause", "y"}}).add(2);
  r.counter("b_total", {{"cause", "x"}}).add(1);
  r.counter("a_total").add(5);
  auto s = r.samples();
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].name, "a_total");
  EXPECT_EQ(s[1].labels, (CounterLabels{{"cause", "x"}}));
  EXPECT_EQ(s[2].labels, (CounterLabels{{"cause", "y"}}));
  EXPECT_EQ(dump_json(r.to_json()),
            R"({"a_total":[{"labels":{},"value":5}],)"
            R"("b_total":[{"labels":{"cause":"x"},"value":1},{"labels":{"cause":"y"},"value":2}]})");
}

TEST(Counters, AddsFromManyThreadsLoseNothing) {
  CounterRegistry r;
  Counter& c = r.counter("x_total");
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < 100000; ++i) c.add();
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(c.value(), 400000u);
}

}  // namespace
}  // namespace medic
