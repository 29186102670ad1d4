"""What makes SQL dangerous beyond its statement type: functions and procedures, per dialect.

A ``SqlFinding`` is one reason a statement is not a plain read. Function calls are judged by name
(lower-cased, schema stripped only for the system schema): first the dangerous lists below (a
precise reason for the approval page), then the built-ins known to be free of side effects; any
other function is ``exec``, because a user-defined function can change data. The database's
read-only transaction remains the wall behind these lists, except where noted (``dblink`` and
backend termination work inside a read-only transaction, which is why they are listed).
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.guard import Risk
from broker.guard.sql_pg_builtins import STABLE as PG_STABLE
from broker.guard.sql_pg_builtins import VOLATILE as PG_VOLATILE


@dataclass(frozen=True)
class SqlFinding:
    """One reason a statement is not a plain read (or, with ``Risk.READ``, why it is one)."""

    risk: Risk
    reason: str
    problem: str = ""
    """Set when the text is not one valid statement at all (``invalid_sql``, ``multiple_statements``):
    the caller gets a 400 that says how to fix it, whatever the policy says about ``unknown``."""
    position: int | None = None
    """Where the parser stopped (0-based character offset), when it says."""
    function: tuple[str, str] | None = None
    """(schema or "", name) when the reason is only that the function is not a known built-in: a
    resolver that can read the function's definition (``sql_tsql_resolve``) judges that instead."""


def words(text: str) -> frozenset[str]:
    """A set of names written as white-space separated text (long lists read better so)."""
    return frozenset(text.split())


def _table(risk: Risk, reason: str, names: str) -> dict[str, SqlFinding]:
    return {name: SqlFinding(risk, reason.replace("{}", name)) for name in names.split()}


_FILE_READ = "{}() reads files on the database server"
_NO_SEE = "{}() runs SQL text the broker cannot inspect"

# --- PostgreSQL ---------------------------------------------------------------------------------
PG_DANGEROUS: dict[str, SqlFinding] = {
    **_table(Risk.EXEC, "{}() opens a connection to another database, outside the read-only transaction",
             "dblink dblink_exec dblink_connect dblink_connect_u dblink_send_query dblink_open dblink_fetch "
             "dblink_get_result dblink_disconnect dblink_close dblink_cancel_query dblink_get_connections "
             "dblink_is_busy dblink_get_notify dblink_error_message"),
    **_table(Risk.EXEC, _NO_SEE, "query_to_xml query_to_xml_and_xmlschema query_to_xmlschema cursor_to_xml "
             "cursor_to_xmlschema ts_stat ts_rewrite"),
    **_table(Risk.ADMIN, _FILE_READ, "pg_read_file pg_read_binary_file pg_stat_file pg_ls_dir pg_ls_logdir "
             "pg_ls_waldir pg_ls_tmpdir pg_ls_archive_statusdir pg_ls_logicalmapdir pg_ls_logicalsnapdir "
             "pg_ls_replslotdir pg_ls_summariesdir pg_logdir_ls pg_show_all_file_settings lo_import"),
    **_table(Risk.ADMIN, "{}() writes files on the database server",
             "lo_export pg_file_write pg_file_rename pg_file_unlink pg_file_sync"),
    **_table(Risk.ADMIN, "{}() cancels or terminates other sessions", "pg_terminate_backend pg_cancel_backend"),
    **_table(Risk.ADMIN, "{}() operates the server (configuration, WAL, backups, replication, statistics)",
             "pg_reload_conf pg_rotate_logfile pg_switch_wal pg_promote pg_create_restore_point pg_backup_start "
             "pg_backup_stop pg_start_backup pg_stop_backup pg_wal_replay_pause pg_wal_replay_resume "
             "pg_create_physical_replication_slot pg_create_logical_replication_slot pg_drop_replication_slot "
             "pg_copy_physical_replication_slot pg_copy_logical_replication_slot pg_replication_slot_advance "
             "pg_sync_replication_slots pg_logical_slot_get_changes pg_logical_slot_get_binary_changes "
             "pg_replication_origin_create pg_replication_origin_drop pg_replication_origin_advance "
             "pg_replication_origin_session_setup pg_replication_origin_session_reset "
             "pg_replication_origin_xact_setup pg_replication_origin_xact_reset pg_stat_reset pg_stat_reset_shared "
             "pg_stat_reset_single_table_counters pg_stat_reset_single_function_counters pg_stat_reset_slru "
             "pg_stat_reset_replication_slot pg_stat_reset_subscription_stats pg_stat_reset_backend_stats "
             "pg_log_backend_memory_contexts pg_log_standby_snapshot pg_import_system_collations "
             "pg_restore_relation_stats pg_restore_attribute_stats pg_clear_relation_stats "
             "pg_clear_attribute_stats pg_stat_force_next_flush pg_stat_clear_snapshot "
             "pg_stop_making_pinned_objects brin_summarize_range brin_summarize_new_values "
             "brin_desummarize_range gin_clean_pending_list"),
    **_table(Risk.WRITE, "{}() advances or sets a sequence", "nextval setval"),
    **_table(Risk.WRITE, "{}() takes or releases an advisory lock",
             "pg_advisory_lock pg_advisory_lock_shared pg_advisory_unlock pg_advisory_unlock_all "
             "pg_advisory_unlock_shared pg_advisory_xact_lock pg_advisory_xact_lock_shared pg_try_advisory_lock "
             "pg_try_advisory_lock_shared pg_try_advisory_xact_lock pg_try_advisory_xact_lock_shared"),
    **_table(Risk.WRITE, "{}() changes large objects",
             "lo_create lo_creat lo_unlink lo_put lowrite lo_truncate lo_truncate64 lo_from_bytea"),
    **_table(Risk.WRITE, "{}() sends a notification or message to other sessions",
             "pg_notify pg_logical_emit_message"),
    **_table(Risk.SESSION, "{}() changes session state", "set_config setseed pg_export_snapshot"),
    **_table(Risk.WRITE, "{}() assigns a transaction id (it consumes one on every call)",
             "txid_current pg_current_xact_id"),
    **_table(Risk.EXEC, "{}() runs queries over whole tables or schemas, through views the broker did not see",
             "table_to_xml table_to_xml_and_xmlschema table_to_xmlschema schema_to_xml "
             "schema_to_xml_and_xmlschema schema_to_xmlschema database_to_xml database_to_xml_and_xmlschema "
             "database_to_xmlschema"),
    **_table(Risk.EXEC, "{}() calls the input function of a type named at run time",
             "pg_input_is_valid pg_input_error_info"),
    **_table(Risk.ADMIN, "{}() only waits, holding a database connection (no read needs it)",
             "pg_sleep pg_sleep_for pg_sleep_until pg_wait_for_backend_termination"),
}
PG_DANGEROUS_PREFIXES = {"dblink": PG_DANGEROUS["dblink"], "binary_upgrade_": SqlFinding(
    Risk.ADMIN, "binary_upgrade_*() functions are for pg_upgrade only")}

# Volatile built-ins that only read (or only compute); the rest of VOLATILE is treated as a write.
PG_HARMLESS_VOLATILE = words("""
random random_normal clock_timestamp timeofday gen_random_uuid uuidv4 uuidv7 currval lastval array_sample
array_shuffle pg_database_size pg_relation_size pg_table_size
pg_indexes_size pg_total_relation_size pg_tablespace_size pg_is_in_recovery pg_blocking_pids
pg_safe_snapshot_blocking_pids pg_lock_status pg_current_wal_lsn pg_current_wal_insert_lsn
pg_current_wal_flush_lsn pg_last_wal_receive_lsn pg_last_wal_replay_lsn pg_last_xact_replay_timestamp
pg_is_wal_replay_paused pg_get_wal_replay_pause_state pg_partition_tree pg_partition_ancestors pg_xact_status
txid_status pg_jit_available pg_notification_queue_usage pg_stat_have_stats pg_xact_commit_timestamp
pg_xact_commit_timestamp_origin pg_last_committed_xact pg_collation_actual_version
pg_database_collation_actual_version pg_sequence_last_value pg_get_sequence_data pg_control_checkpoint
pg_control_init pg_control_recovery pg_control_system pg_get_wait_events pg_get_loaded_modules
pg_get_backend_memory_contexts pg_get_shmem_allocations pg_get_multixact_members pg_prepared_xact
pg_get_wal_resource_managers pg_stat_get_io pg_stat_get_backend_io pg_stat_get_backend_wal
pg_stat_get_recovery_prefetch pg_replication_origin_progress pg_replication_origin_session_progress
pg_replication_origin_session_is_setup pg_show_replication_origin_status current_query loread lo_get
""")

# --- MySQL / MariaDB ----------------------------------------------------------------------------
MYSQL_DANGEROUS: dict[str, SqlFinding] = {
    **_table(Risk.ADMIN, _FILE_READ, "load_file"),
    **_table(Risk.EXEC, "{}() runs an operating-system command (lib_mysqludf_sys)", "sys_exec sys_eval"),
    **_table(Risk.ADMIN, "{}() changes the server's environment (lib_mysqludf_sys)", "sys_set sys_get"),
    **_table(Risk.WRITE, "{}() takes or releases a named lock", "get_lock release_lock release_all_locks"),
    **_table(Risk.WRITE, "{}() advances or sets a sequence", "nextval setval"),
    **_table(Risk.ADMIN, "{}() only waits or burns CPU, holding a connection (no read needs it)",
             "sleep benchmark"),
    **_table(Risk.ADMIN, "{}() waits on replication", "master_pos_wait source_pos_wait master_gtid_wait "
             "wsrep_sync_wait_upto_gtid wait_for_executed_gtid_set wait_until_sql_thread_after_gtids"),
}

MYSQL_BUILTINS = words("""
abs acos adddate addtime add_months aes_decrypt aes_encrypt area ascii asin atan atan2 avg bin
binlog_gtid_pos bit_and bit_count bit_length bit_or bit_xor boundary buffer cast ceil ceiling centroid char
character_length charset char_length chr coalesce coercibility collation column_add column_check
column_create column_delete column_exists column_get column_json column_list compress concat concat_ws
connection_id contains conv convert convert_tz convexhull cos cot count crc32 crc32c crosses cume_dist curdate
current_date current_role current_time current_timestamp current_user curtime database date datediff
date_add date_format date_sub day dayname dayofmonth dayofweek dayofyear decode decode_histogram degrees
dense_rank des_decrypt des_encrypt dimension disjoint elt encode encrypt endpoint envelope equals exp
export_set extract extractvalue field find_in_set first_value floor format format_bytes format_pico_time
found_rows from_base64 from_days from_unixtime geometrycollection get_format glength greatest group_concat
hex hour if ifnull inet6_aton inet6_ntoa inet_aton inet_ntoa insert instr intersects isnull is_free_lock
is_ipv4 is_ipv4_compat is_ipv4_mapped is_ipv6 is_used_lock json_array json_arrayagg json_array_append
json_array_insert json_array_intersect json_compact json_contains json_contains_path json_depth
json_detailed json_equals json_exists json_extract json_insert json_keys json_key_value json_length
json_loose json_merge json_merge_patch json_merge_preserve json_normalize json_object json_objectagg
json_object_filter_keys json_object_to_array json_overlaps json_pretty json_query json_quote json_remove
json_replace json_schema_valid json_search json_set json_table json_type json_unquote json_valid json_value
kdf lag lastval last_day last_value lcase lead least left length lengthb linestring ln localtime
localtimestamp locate log log10 log2 lower lpad ltrim makedate maketime make_set max md5 median microsecond
mid min minute mod month monthname months_between multilinestring multipoint multipolygon name_const
natural_sort_key now nth_value ntile nullif nvl nvl2 oct octet_length old_password ord overlaps password
percentile_cont percentile_disc percent_rank period_add period_diff pi point polygon position pow power
quarter quote radians rand random_bytes rank regexp_instr regexp_replace regexp_substr repeat replace
reverse right round rownum row_count row_number rpad rtrim schema second sec_to_time session_user sformat
sha sha1 sha2 sign sin soundex space sqrt srid startpoint std stddev stddev_pop stddev_samp strcmp
str_to_date subdate substr substring substring_index subtime sum sysdate system_user sys_guid tan timediff
timestamp timestampadd timestampdiff time time_format time_to_sec touches to_base64 to_char to_date to_days
to_number to_seconds trim trim_oracle trunc truncate ucase uncompress uncompressed_length unhex
unix_timestamp updatexml upper user utc_date utc_time utc_timestamp uuid uuid_short values variance var_pop
var_samp vec_distance vec_distance_cosine vec_distance_euclidean version week weekday weekofyear
weight_string within x y year yearweek st_area st_aswkt st_astext st_asbinary st_aswkb st_asgeojson
st_geomfromtext st_geomfromwkb st_geomfromgeojson st_pointfromtext st_boundary st_buffer st_centroid
st_contains st_convexhull st_crosses st_difference st_dimension st_disjoint st_distance st_distance_sphere
st_endpoint st_envelope st_equals st_geometryn st_geometrytype st_intersection st_intersects st_isclosed
st_isempty st_length st_numgeometries st_numpoints st_overlaps st_pointn st_pointonsurface st_relate
st_srid st_startpoint st_symdifference st_touches st_union st_within st_x st_y
""")

# --- SQL Server / Azure SQL ---------------------------------------------------------------------
TSQL_DANGEROUS: dict[str, SqlFinding] = {
    **_table(Risk.EXEC, "{}() reads files or queries another server, outside the broker's view",
             "openrowset opendatasource openquery"),
    **_table(Risk.ADMIN, _FILE_READ, "fn_get_audit_file fn_xe_file_target_read_file fn_trace_gettable"),
}

TSQL_BUILTINS = words("""
abs acos app_name ascii asin atan atn2 avg approx_count_distinct approx_percentile_cont
approx_percentile_disc cast ceiling char charindex checksum checksum_agg choose coalesce col_length col_name
columnproperty compress concat concat_ws convert cos cot count count_big current_timestamp current_user
cursor_status datalength databasepropertyex dateadd datediff datediff_big datefromparts datename datepart
datetime2fromparts datetimefromparts datetimeoffsetfromparts date_bucket datetrunc day db_id db_name
decompress degrees dense_rank difference eomonth error_line error_message error_number error_procedure
error_severity error_state exp file_id file_name filegroup_id filegroup_name first_value floor format
formatmessage fulltextcatalogproperty fulltextserviceproperty generate_series getansinull getdate getutcdate
greatest grouping grouping_id has_dbaccess has_perms_by_name hashbytes host_id host_name ident_current
ident_incr ident_seed identity iif index_col indexkey_property indexproperty is_member is_rolemember
is_srvrolemember isdate isjson isnull isnumeric json_array json_modify json_object json_path_exists
json_query json_value lag last_value lead least left len log log10 lower ltrim max min month nchar newid
newsequentialid ntile nullif object_definition object_id object_name object_schema_name objectproperty
objectpropertyex original_login parsename parse patindex percent_rank percentile_cont percentile_disc pi
power pwdcompare quotename radians rand rank replace replicate reverse right round row_number rowcount_big
rtrim schema_id schema_name scope_identity serverproperty session_context session_user sessionproperty sign
sin smalldatetimefromparts soundex space sqrt square stdev stdevp str string_agg string_escape string_split
stuff substring sum suser_id suser_name suser_sid suser_sname switchoffset sysdatetime sysdatetimeoffset
system_user sysutcdatetime tan timefromparts todatetimeoffset translate trim try_cast try_convert
try_parse type_id type_name typeproperty unicode upper user_id user_name var varp year xact_state
cume_dist edit_distance edit_distance_similarity jaro_winkler_distance jaro_winkler_similarity
regexp_like regexp_replace regexp_substr regexp_instr regexp_count regexp_matches regexp_split_to_table
fn_listextendedproperty fn_builtin_permissions fn_my_permissions fn_varbintohexstr has_permissions
openjson openxml contains containstable freetexttable freetext applock_mode applock_test
""")

# T-SQL procedures by name; anything else an EXEC calls is ``exec`` (a procedure can do anything).
TSQL_PROCEDURES: dict[str, SqlFinding] = {
    **_table(Risk.EXEC, "{} runs an operating-system command", "xp_cmdshell"),
    **_table(Risk.EXEC, "{} runs SQL text the broker cannot inspect", "sp_executesql sp_execute sp_prepexec"),
    **_table(Risk.EXEC, "{} runs COM/OLE automation code", "sp_oacreate sp_oamethod sp_oasetproperty"),
    **_table(Risk.ADMIN, "{} changes the server configuration",
             "sp_configure sp_addlinkedserver sp_addlinkedsrvlogin sp_serveroption sp_dropserver"),
    **_table(Risk.PRIVILEGE, "{} changes logins, users or role membership",
             "sp_addrolemember sp_droprolemember sp_addsrvrolemember sp_dropsrvrolemember sp_addlogin "
             "sp_droplogin sp_adduser sp_dropuser sp_grantdbaccess sp_revokedbaccess sp_change_users_login "
             "sp_password sp_setapprole sp_grantlogin sp_denylogin sp_revokelogin"),
    **_table(Risk.SCHEMA, "{} renames an object", "sp_rename"),
    **_table(Risk.EXEC, "{} takes or releases an application lock, which outlives a read",
             "sp_getapplock sp_releaseapplock"),
    **_table(Risk.EXEC, "{} advances a sequence", "sp_sequence_get_range"),
    **_table(Risk.SESSION, "{} changes session state", "sp_set_session_context"),
}


def function_finding(dialect: str, name: str, schema: str | None = None, n_args: int = 0) -> SqlFinding | None:
    """None when ``name`` is a built-in known to be free of side effects, else why it is not."""
    lower = name.lower()
    system = schema is None or schema.lower() in _SYSTEM_SCHEMAS[dialect]
    if dialect == "postgres":
        if lower in PG_DANGEROUS:
            return PG_DANGEROUS[lower]
        for prefix, finding in PG_DANGEROUS_PREFIXES.items():
            if lower.startswith(prefix):
                return finding
        if system and (lower in PG_STABLE or lower in PG_HARMLESS_VOLATILE):
            return None
        if system and lower in PG_VOLATILE:
            return SqlFinding(Risk.WRITE, f"{lower}() is a volatile built-in that may change data or server state")
        return _user_function(name, schema)
    if dialect == "mysql":
        if lower in MYSQL_DANGEROUS:
            return MYSQL_DANGEROUS[lower]
        if lower == "last_insert_id" and n_args:
            return SqlFinding(Risk.SESSION, "last_insert_id(expr) changes session state")
        if system and (lower in MYSQL_BUILTINS or lower == "last_insert_id"):
            return None
        return _user_function(name, schema)
    if lower in TSQL_DANGEROUS:
        return TSQL_DANGEROUS[lower]
    if system and lower in TSQL_BUILTINS:
        return None
    return _user_function(name, schema)


def pg_dangerous(name: str) -> SqlFinding | None:
    """The reason a PostgreSQL function of this name is dangerous whatever its schema, if listed."""
    return PG_DANGEROUS.get(name) or next(
        (f for prefix, f in PG_DANGEROUS_PREFIXES.items() if name.startswith(prefix)), None)


def pg_attribute_finding(name: str) -> SqlFinding | None:
    """``x.name`` / ``(x).name`` is a call of ``name(x)`` when ``x`` has no such field: judged here
    when ``name`` is a known dangerous or volatile built-in; any other name is left to the target's
    catalog (``sql_pg_resolve``), since most such names are plain columns."""
    lower = name.lower()
    finding = pg_dangerous(lower)
    if finding is None and lower in PG_VOLATILE and lower not in PG_HARMLESS_VOLATILE:
        finding = SqlFinding(Risk.WRITE, f"{lower}() is a volatile built-in that may change data or server state")
    if finding is None:
        return None
    return SqlFinding(finding.risk, f"attribute notation .{lower} calls a function: {finding.reason}")


def procedure_finding(dialect: str, name: str) -> SqlFinding:
    """Why calling this procedure is not a read (it never is)."""
    lower = name.lower().rsplit(".", 1)[-1]
    if dialect == "tsql":
        if lower in TSQL_PROCEDURES:
            return TSQL_PROCEDURES[lower]
        if lower.startswith("xp_"):
            return SqlFinding(Risk.EXEC, f"{lower} is an extended stored procedure (code outside the SQL sandbox)")
    return SqlFinding(Risk.EXEC, f"{name} is a stored procedure the broker cannot inspect; it can change data")


def _user_function(name: str, schema: str | None) -> SqlFinding:
    full = f"{schema}.{name}" if schema else name
    return SqlFinding(Risk.EXEC, f"{full}() is not a built-in the broker knows to be read-only "
                              "(a user-defined function can change data)", function=(schema or "", name))


_SYSTEM_SCHEMAS = {"postgres": {"pg_catalog"}, "mysql": set(), "tsql": {"sys"}}
