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

TEST(Histograms, CountEachDurationInTheFirstBucketThatHoldsItAndSumThem) {
  using namespace std::chrono_literals;
  Histogram h({0.001, 0.01, 0.1});
  h.observe(500us);  // <= 1 ms
  h.observe(1ms);    // on the bound: still the first bucket (le is <=)
  h.observe(2ms);    // <= 10 ms
  h.observe(5s);     // beyond every bound: +Inf only
  h.observe(-3ms);   // a clock step backwards counts as 0
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{3, 4, 4}));
  EXPECT_EQ(s.count, 5u);
  EXPECT_NEAR(s.sum_seconds, 0.0005 + 0.001 + 0.002 + 5.0, 1e-9);
}

TEST(Histograms, TheRegistryKeepsOneHistogramPerNameAndLabelsWithItsHelp) {
  CounterRegistry r;
  Histogram& a = r.histogram("wait_seconds", {{"lane", "urgent"}}, "how long", {1.0});
  EXPECT_EQ(&a, &r.histogram("wait_seconds", {{"lane", "urgent"}}));
  r.histogram("wait_seconds", {{"lane", "bulk"}}).observe(std::chrono::seconds(2));
  a.observe(std::chrono::milliseconds(10));
  auto samples = r.histogram_samples();
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[0].labels, (CounterLabels{{"lane", "bulk"}}));
  EXPECT_EQ(samples[0].value.bounds, kLatencyBuckets);  // the default buckets
  EXPECT_EQ(samples[0].value.count, 1u);
  EXPECT_EQ(samples[1].value.cumulative, (std::vector<uint64_t>{1}));
  EXPECT_EQ(samples[1].help, "how long");
  EXPECT_TRUE(r.samples().empty());  // histograms are not counters
}

TEST(Histograms, ObservationsFromManyThreadsLoseNothing) {
  Histogram h(kLatencyBuckets);
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < 50000; ++i) h.observe(std::chrono::microseconds(100 * (t + 1)));
    });
  }
  for (auto& t : ts) t.join();
  HistogramSnapshot s = h.snapshot();
  EXPECT_EQ(s.count, 200000u);
  EXPECT_EQ(s.cumulative.front(), 200000u);  // every one is <= 0.5 ms
  EXPECT_NEAR(s.sum_seconds, 50000 * (0.0001 + 0.0002 + 0.0003 + 0.0004), 1e-6);
}

}  // namespace
}  // namespace medic
