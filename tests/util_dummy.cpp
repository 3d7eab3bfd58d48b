// Keeps mu_test_util non-empty before the first util_*.cpp exists.
