<resource schema="epnml_crossings" resdir="crossings">
	<meta name="title">epnml crossings: MESSENGER bow shock and magnetopause crossings at Mercury found by machine learning</meta>
	<meta name="description">
		Bow shock and magnetopause crossings of MESSENGER at Mercury (inbound and
		outbound, outer and inner edges, after the boundary numbering of Philpott
		et al. 2020) found by a sequence model classifying magnetometer data into
		plasma regions, after the Europlanet Mercury boundaries science case
		(Julka et al. 2022).  One row per boundary edge with its time, MSO
		position (cartesian, km), local time, radial distance, orbit number,
		model score and the model version that wrote it; a quicklook of the
		orbit's magnetic field with the crossings marked.  Rows derived from
		simulated magnetometer data say "SIMULATED" in processing_level_desc.
	</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">planetary-science</meta>
	<meta name="subject">solar-system-astronomy</meta>
	<meta name="subject">planetary-magnetospheres</meta>
	<meta name="subject">mercury-planet</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="source">10.1029/2019JA027544</meta>
	<meta name="referenceURL">https://doi.org/10.1029/2019JA027544</meta>
	<meta name="instrument">MESSENGER MAG</meta>
	<meta name="facility">MESSENGER</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<!-- the registry record's shortName (at most 16 characters) -->
		<meta name="shortName">epnml crossings</meta>
		<meta name="description">
			Boundary crossings, one boundary edge per row (EPN-TAP 2.0, dataproduct_type ci).
			The table is a view over the current rows of the store.
		</meta>
		<!-- every TAP response carries a DataLink service descriptor (adhoc:service)
			on granule_uid: the service dl below (service/dachs/userconfig.rd) -->
		<meta name="_associatedDatalinkService">
			<meta name="serviceId">dl</meta>
			<meta name="idColumn">granule_uid</meta>
		</meta>
		<mixin spatial_frame_type="cartesian"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition feature_name spatial_coordinate_description spatial_origin local_time_min local_time_max radial_distance_min radial_distance_max datalink_url access_url access_format access_estsize"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="crossing_direction" type="text" ucd="meta.code"
			description="inbound or outbound"/>
		<column name="crossing_edge" type="text" ucd="meta.code"
			description="outer or inner edge"/>
		<column name="orbit_number" type="integer" ucd="meta.id;obs.sequence"
			description="Spacecraft orbit number">
			<values nullLiteral="-1"/>
		</column>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.crossings WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<table id="coverage_src" onDisk="True" adql="False">
		<meta name="description">
			The time and spectral extent of epn_core's rows under the names and units
			DaCHS' coverage updater knows (t_min/t_max in JD, em_min/em_max as vacuum
			wavelengths in m).  Not queryable through TAP: only `dachs limits` reads it.
			sky_ra/sky_dec are always NULL: the footprints are in body-fixed frames,
			not on the sky, and DaCHS 2.7 writes spatial coverage as ICRS MOCs only,
			so its updater finds no sky position and writes no spatial coverage.
		</meta>
		<column name="t_min" type="double precision" unit="d" ucd="time.start;obs"/>
		<column name="t_max" type="double precision" unit="d" ucd="time.end;obs"/>
		<column name="em_min" type="double precision" unit="m" ucd="em.wl;stat.min"/>
		<column name="em_max" type="double precision" unit="m" ucd="em.wl;stat.max"/>
		<column name="sky_ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
		<column name="sky_dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT time_min AS t_min, time_max AS t_max,
					299792458.0 / NULLIF(spectral_range_max, 0) AS em_min,
					299792458.0 / NULLIF(spectral_range_min, 0) AS em_max,
					NULL::double precision AS sky_ra, NULL::double precision AS sky_dec
				FROM \schema.epn_core)
		</viewStatement>
	</table>

	<!-- Coverage for the registry records, from the rows: `dachs limits <family>/q`
		(service/provision.sh coverage, run after every ingest) fills it in from
		coverage_src (temporal in MJD, spectral in J, as VODataService wants).  No
		spatial coverage: DaCHS 2.7 writes ICRS MOCs only, these footprints are in
		body-fixed frames (see coverage_src). -->
	<coverage>
		<updater sourceTable="coverage_src"/>
	</coverage>

	<FEED source="%#epnml-datalink"/>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<data id="coverage">
		<make table="coverage_src"/>
	</data>

	<regSuite title="epnml crossings regression">
		<regTest title="epn_core serves a current row">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_class FROM epnml_crossings.epn_core"
				>/tap/sync</url>
			<code>
				# a row, not the table name: the name is also in the query echoed back
				row = self.getUnique(self.getVOTableRows())
				self.assertEqual(row["service_title"], "epnml_crossings")
				self.assertEqual(row["target_class"], "planet")
			</code>
		</regTest>
		<regTest title="bow shock crossings by local time">
			<url parSet="TAP" QUERY="SELECT TOP 5 feature_name, local_time_min FROM epnml_crossings.epn_core WHERE feature_name = 'bow shock' AND local_time_min BETWEEN 0 AND 24"
				>/tap/sync</url>
			<code>
				# rows, not the column name: it is also in the header of an empty answer
				rows = self.getVOTableRows()
				self.assertTrue(rows, "no bow shock crossing served")
				for row in rows:
					self.assertEqual(row["feature_name"], "bow shock")
					self.assertTrue(0 &lt;= row["local_time_min"] &lt;= 24)
			</code>
		</regTest>
	</regSuite>
</resource>
