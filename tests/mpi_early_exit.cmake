# Run by CTest (label mpi): a job where one rank dies must end with a non-zero exit code well
# within the timeout, and say which rank failed. Arguments: -DMPIEXEC=... -DNP=... -DPROG=...
# -DMODE=exit|throw -DEXPECT=<text the output must contain> -DEXPECT_RC=<the failed rank's exit code>.
string(TIMESTAMP t0 "%s")
execute_process(COMMAND ${MPIEXEC} -n ${NP} ${PROG} --fail=${MODE} --fail-rank=1
                TIMEOUT 20 RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE out)
string(TIMESTAMP t1 "%s")
math(EXPR took "${t1} - ${t0}")
message("${out}")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "mpirun did not end by itself within 20 s (${rc}): a dead rank left the job hanging")
endif()
if(NOT rc EQUAL EXPECT_RC)
  message(FATAL_ERROR "mpirun exited ${rc}, not the failed rank's code ${EXPECT_RC}")
endif()
string(FIND "${out}" "${EXPECT}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "the output does not contain \"${EXPECT}\"")
endif()
message(STATUS "mpirun exited ${rc} after ${took} s, naming the failed rank")
