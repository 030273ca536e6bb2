/* test_list.h - every C test, one table (see run.c). */
#ifndef ML_TEST_LIST_H
#define ML_TEST_LIST_H

#define TEST_LIST(X) \
  X(router_static) \
  X(router_root_and_odd_paths) \
  X(router_string_param) \
  X(router_int_param) \
  X(router_int_overflow) \
  X(router_float_param) \
  X(router_path_param) \
  X(router_path_backtracks) \
  X(router_path_and_static_siblings) \
  X(router_static_beats_param_added_after) \
  X(router_static_beats_param_added_before) \
  X(router_static_backtracks_to_param) \
  X(router_converter_order) \
  X(router_int_backtracks_to_string) \
  X(router_not_found) \
  X(router_bad_method) \
  X(router_allow_is_a_union) \
  X(router_head_via_get) \
  X(router_explicit_head) \
  X(router_options) \
  X(router_redirect_slash) \
  X(router_no_redirect_other_way) \
  X(router_duplicate_route) \
  X(router_pattern_errors) \
  X(router_method_mask_errors) \
  X(router_max_params) \
  X(router_segment_limit) \
  X(router_backtracking_is_bounded) \
  X(router_format_allow) \
  X(shared_set_get_types) \
  X(shared_add_incr_delete) \
  X(shared_incr_wraps_and_floats) \
  X(shared_ttl) \
  X(shared_keys_sorted_and_growth) \
  X(clock_timer_is_small) \
  X(clock_fires_in_due_order) \
  X(clock_repeats_and_stops_itself) \
  X(clock_heap_keeps_order_under_stops) \
  X(clock_virtual_zero_wait_is_real) \
  X(clock_real_fires_in_due_then_start_order) \
  X(clock_real_stop_head_middle_last) \
  X(clock_real_stop_and_free_inside_callback) \
  X(clock_real_restart_inside_callback) \
  X(clock_real_repeats) \
  X(clock_real_zero_wait_from_callback_goes_last) \
  X(clock_real_idle_and_close) \
  X(watchdog_stops_stuck_code_after_a_hosts_close) \
  X(sched_co_is_small) \
  X(gen_parts_by_kind_retire_close) \
  X(client_deadlines_in_order) \
  X(client_idle_connections_close) \
  X(client_cancel_closes_the_connection)

#endif
