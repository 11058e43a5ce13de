<!-- Benchmark baseline only (epnml bench ingest): how a DaCHS operator would load
     the same epn_core rows without epnml, with a grammar and `dachs imp`.
     Not a service; never published. -->
<resource schema="epnml_bench" resdir="bench">
	<meta name="title">epnml ingest benchmark baseline</meta>
	<meta name="description">dachs imp of SIMULATED epn_core rows with polygons.</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">planetary-science</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<mixin spatial_frame_type="body">//epntap2#table-2_0</mixin>
	</table>

	<data id="import">
		<sources pattern="/var/tmp/epnml-bench/dachs_imp_rows.csv"/>
		<csvGrammar/>
		<make table="epn_core">
			<rowmaker idmaps="*">
				<apply procDef="//epntap2#populate-2_0">
					<bind key="granule_uid">@granule_uid</bind>
					<bind key="granule_gid">@granule_gid</bind>
					<bind key="obs_id">@obs_id</bind>
					<bind key="target_name">@target_name</bind>
					<bind key="instrument_host_name">"Mars Reconnaissance Orbiter"</bind>
					<bind key="instrument_name">"HiRISE"</bind>
					<bind key="time_scale">"UTC"</bind>
					<bind key="time_refposition">"Mars Reconnaissance Orbiter"</bind>
					<bind key="target_region">None</bind>
					<bind key="target_class">@target_class</bind>
					<bind key="processing_level">int(@processing_level)</bind>
					<bind key="s_region">pgsphere.SPoly.fromDALI(
						[float(v) for v in @s_region.split()])</bind>
					<bind key="dataproduct_type">@dataproduct_type</bind>
					<bind key="time_min">float(@time_min)</bind>
					<bind key="time_max">float(@time_max)</bind>
					<bind key="c1min">float(@c1min)</bind>
					<bind key="c1max">float(@c1max)</bind>
					<bind key="c2min">float(@c2min)</bind>
					<bind key="c2max">float(@c2max)</bind>
					<bind key="creation_date">@creation_date</bind>
					<bind key="modification_date">@modification_date</bind>
					<bind key="release_date">@release_date</bind>
					<bind key="service_title">"epnml_bench"</bind>
				</apply>
			</rowmaker>
		</make>
	</data>
</resource>
